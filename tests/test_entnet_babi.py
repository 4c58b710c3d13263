"""EntNet on bAbI: what a stacked group of models does per member. Each member keeps its own best weights, is scored
on its own questions only, and has its own gradient clipped. Table 2's, 5's and 6's test errors depend on all three."""
import pytest
import torch

import mrc_book.experiments.entnet_babi as eb
from mrc_book.models.entnet import EntNet
from mrc_book.training import Trainer
from mrc_book.data.babi import babi_file
from mrc_book.data.sources import find_file

needs_babi_1k = pytest.mark.skipif(any(find_file(babi_file(k, s, 'en')) is None for k in (1, 4, 20) for s in ('train', 'test')),
                                   reason='bAbI en (1k) tasks 1, 4, 20 are not under any data root: `mrc data fetch babi-en`')


def test_each_member_keeps_the_weights_of_its_own_best_epoch():
    torch.manual_seed(0)
    net = EntNet(12, dim=8, n_slots=3, max_sentence_len=4, max_query_len=4, n_models=2)
    sel = eb.SelectedEntNets(net)
    weights = lambda: {n: p.detach().clone() for n, p in net.named_parameters()}
    sel.update_best(torch.tensor([1.0, 5.0]), epoch=1); at1 = weights()
    with torch.no_grad():
        for p in net.parameters(): p.add_(1.0)
    sel.update_best(torch.tensor([2.0, 3.0]), epoch=2); at2 = weights()   # member 1 improves, member 0 does not
    assert sel.best_epoch.tolist() == [1, 2] and sel.best_error.tolist() == [1.0, 3.0]
    for n, p in sel.best_net().named_parameters():
        assert torch.equal(p[0], at1[n][0]) and torch.equal(p[1], at2[n][1]), n


def captured_trainer(monkeypatch, tasks, cache=None, **cfg):
    "Build a stacked group's Trainer as `train_group` does, without training it."
    got = {}

    class Capture(Trainer):
        def fit(self, resume=False):
            got['trainer'] = self
            return {'status': 'interrupted'}
    monkeypatch.setattr(eb, 'Trainer', Capture)
    eb.train_group([(t, 0) for t in tasks], eb.EntNetBabiConfig.quick(tasks=tasks, dim=8, n_slots=3, **cfg), 'quick',
                   results_dir='/nonexistent-not-written', tasks_cache=cache if cache is not None else {})
    return got['trainer']


@needs_babi_1k
def test_members_with_different_split_sizes_are_scored_as_if_alone(monkeypatch):
    "bAbI 1k task 20 has 96 validation questions, task 1 has 100: the padding of the shorter split is never scored."
    cache = {}
    t = captured_trainer(monkeypatch, [1, 20], cache, eval_batch=7)
    t.epoch = 0
    stacked = t.evaluate_fn(t.model, 'valid')
    sizes = []
    for k, (task, name) in enumerate([(1, 't1_s0'), (20, 't20_s0')]):
        d = cache[task]['data']['valid']; sizes.append(len(d))
        with torch.no_grad():
            alone = 100.0 * (t.model.net.select(k).eval()(d.story, d.query).argmax(-1) != d.answer).double().mean().item()
        assert stacked[f'error_{name}'] == pytest.approx(alone, abs=1e-9)
    assert sizes == [100, 96]


@needs_babi_1k
def test_each_members_gradient_is_clipped_before_the_step(monkeypatch):
    t = captured_trainer(monkeypatch, [1, 4])
    t.epoch = 0
    params = list(t.model.net.parameters())
    before = [p.detach().clone() for p in params]
    real_clip, seen = eb.clip_norm_per_model, []

    def spy(ps, K, max_norm):
        seen.append(all(torch.equal(p, b) for p, b in zip(ps, before)))   # the optimizer has not moved them yet
        out = real_clip(ps, K, max_norm)
        seen.append(torch.stack([p.grad.reshape(K, -1).pow(2).sum(1) for p in ps if p.grad is not None]).sum(0).sqrt())
        return out
    monkeypatch.setattr(eb, 'clip_norm_per_model', spy)
    loss_fn = t.loss_fn
    t.loss_fn = lambda m, b: 1e4 * loss_fn(m, b)          # a huge loss: the clip must act on both members
    t._step(t.train_batches(0, torch.Generator().manual_seed(0))[0])
    assert len(seen) == 2 and seen[0]
    assert seen[1].shape == (2,) and (seen[1] <= 40.0 + 1e-3).all() and (seen[1] > 39.0).all()
    assert any(not torch.equal(p, b) for p, b in zip(params, before))   # and then the step is taken
