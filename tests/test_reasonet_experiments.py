"""ReasoNet experiment chapters: configurations, data tensors, entity reshuffling, evaluation, the cloze data error."""
import inspect, json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mrc_book.data.sources import DataError
from mrc_book.experiments import reasonet_cloze as rc
from mrc_book.experiments import reasonet_graphs as rg
from mrc_book.models.reasonet import ReasoNet, GraphReasoNetConfig, ReasoNetOutput
from mrc_book.training import EXPERIMENTS, bf16_supported


def test_graph_configs_follow_the_paper():
    small = rg.GraphRunConfig.make('small', 'reasonet', 'full')
    assert (small.n_train, small.model.embed_dim, small.model.hidden_size, small.model.t_max, small.train.epochs) == \
        (500_000, 100, 128, 15, 20)
    large = rg.GraphRunConfig.make('large', 'last', 'full')
    assert (large.model.hidden_size, large.model.t_max, large.train.epochs, large.model.mode) == (256, 25, 40, 'last')
    assert rg.GraphRunConfig.make('small', 'tmax2', 'full').model.t_max == 2
    reduced = rg.GraphRunConfig.make('small', 'reasonet', 'reduced', n_train=20_000)
    assert reduced.scale('reduced').startswith('reduced-data run') and 'BiLSTM 128' in reduced.scale('reduced')
    assert small.scale('full').startswith("paper's setting")
    with pytest.raises(ValueError): rg.GraphRunConfig.make('small', 'reasonet', 'huge')


def test_bf16_graph_runs_are_named_and_labelled():
    c = rg.GraphRunConfig.make('small', 'last', 'reduced', n_train=200_000, bf16=True)
    assert c.train.bf16 and c.run_name('reduced', 0) == 'reasonet-graphs-small-last-reduced-n200k-bf16-seed0'
    assert c.scale('reduced').endswith('bf16 autocast')
    assert not rg.GraphRunConfig.make('small').train.bf16


def test_runs_off_the_papers_schedule_say_so():
    c = rg.GraphRunConfig.make('small', 'reasonet', 'full', epochs=8, bf16=True)
    assert c.run_name('full', 0) == 'reasonet-graphs-small-reasonet-full-e8-bf16-seed0'
    assert c.scale('full').startswith("paper's data, not its schedule") and '8 epochs' in c.scale('full')
    d = rg.GraphRunConfig.make('small', 'reasonet', 'reduced', n_train=200_000, epochs=12, lr_halve_every=3)
    assert d.run_name('reduced', 1) == 'reasonet-graphs-small-reasonet-reduced-n200k-lrhalf3-seed1'
    assert 'lr halved every 3 epochs' in d.scale('reduced')
    assert [d.train.epoch_lr(e) for e in (0, 2, 3, 6, 11)] == [1e-3, 1e-3, 5e-4, 2.5e-4, 1.25e-4]
    full = rg.GraphRunConfig.make('small', 'reasonet', 'full')
    assert full.run_name('full', 0) == 'reasonet-graphs-small-reasonet-full-seed0' and full.train.lr_halve_every is None


@pytest.mark.skipif(not bf16_supported('cpu'), reason='no oneDNN bf16 kernels on this CPU (its LSTM primitive refuses bf16); '
                    'the trainer never turns autocast on here (bf16_supported is False), so the heads cannot meet bf16')
def test_reasonet_heads_stay_float32_under_bf16_autocast():
    torch.manual_seed(0)
    d = rg.graph_tensors('small', 8, 0)
    model = ReasoNet(GraphReasoNetConfig.quick(vocab_size=int(d.graph.max()) + 1)).eval()
    *inputs, y = d.batch(torch.arange(8))
    ref = model(*inputs)
    memory_dtypes = []
    model.doc_encoder.forward_layers[0].register_forward_hook(lambda m, args, output: memory_dtypes.append(output[0].dtype))
    with torch.autocast('cpu', dtype=torch.bfloat16): out = model(*inputs)
    assert memory_dtypes == [torch.bfloat16]             # autocast was active in the body of the model ...
    assert out.gate_logits.dtype == out.answer_log_probs.dtype == torch.float32   # ... but not in the heads
    torch.testing.assert_close(out.answer_log_probs.exp(), ref.answer_log_probs.exp(), atol=3e-2, rtol=0)
    torch.testing.assert_close(torch.sigmoid(out.gate_logits), torch.sigmoid(ref.gate_logits), atol=3e-2, rtol=0)


def test_reasonet_heads_return_float32_from_bf16_states():
    # on any CPU: the gate and the Yes/No head cast their logits to float32 (pi_T multiplies up to T_max gate values)
    model = ReasoNet(GraphReasoNetConfig.quick(vocab_size=13))
    states = torch.randn(2, 4, model.gate.linear.in_features).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        gate, answer = model.gate(states), model.answer(states)
    assert gate.dtype == torch.float32 and gate.shape == (2, 4)
    assert answer.dtype == torch.float32 and answer.shape == (2, 4, 2)
    torch.testing.assert_close(answer.exp().sum(-1), torch.ones(2, 4))


def test_every_size_variant_is_registered():
    for size in ('small', 'large'):
        for v in rg.VARIANTS: assert f'reasonet-graphs-{size}-{v}' in EXPERIMENTS
    assert {'reasonet-graphs', 'reasonet-cloze', 'asreader-cloze'} <= set(EXPERIMENTS)


def test_graph_runs_take_a_fixed_window_and_cloze_runs_refuse_it():
    "`mrc train ... --finish-by S` reaches every graph run; the cloze runs, which cannot end early, refuse it by name."
    from mrc_book.training import run_experiment
    for name in ['reasonet-graphs'] + [f'reasonet-graphs-{s}-{v}' for s in ('small', 'large') for v in rg.VARIANTS]:
        assert 'finish_by' in inspect.signature(EXPERIMENTS[name].fn).parameters, name
    for name in ('reasonet-cloze', 'asreader-cloze'):
        with pytest.raises(ValueError, match='does not take finish_by'): run_experiment(name, finish_by=60)


def test_graph_tensors_and_batches():
    d = rg.graph_tensors('small', 200, 3)
    assert torch.equal(d.label.bool(), d.hops >= 0)
    g, m, q, qm, y = d.batch(torch.tensor([0, 5, 7]))
    assert g.shape == m.shape and g.shape[1] == int(m.sum(1).max()) and g.shape[1] % 4 == 0
    assert (g[~m] == 0).all() and (g[m] > 0).all()
    # every 4th symbol is '->' (id 2) after a node, every 4th+3 is '#' (id 3)
    assert (g[:, 1::4][m[:, 1::4]] == 2).all() and (g[:, 3::4][m[:, 3::4]] == 3).all()
    assert torch.equal(q[:, 1], torch.full((3,), 2))
    assert rg.split_seeds(0) == {'train': 1, 'valid': 2, 'test': 3}


def test_evaluate_graphs_known_values():
    "A model whose answer is a constant P(Yes) gives ROC-AUC 0.5 and the majority-class accuracy."
    d = rg.graph_tensors('small', 300, 4)
    model = ReasoNet(GraphReasoNetConfig.quick(vocab_size=13, t_max=1))   # one step: P(Yes) exactly constant
    with torch.no_grad():
        model.answer.linear.weight.zero_(); model.answer.linear.bias.fill_(2.0)   # P(Yes) = sigmoid(2) everywhere
    m = rg.evaluate_graphs(model, d)
    assert m['roc_auc'] == pytest.approx(0.5)
    assert m['accuracy'] == pytest.approx(100.0 * d.label.float().mean().item())
    assert m['pr_auc'] == pytest.approx(d.label.float().mean().item())
    assert m['mean_stop_step'] == 1


def test_stop_step_table_counts_every_graph():
    d = rg.graph_tensors('small', 120, 9)
    t = rg.stop_step_table(ReasoNet(GraphReasoNetConfig.quick(vocab_size=13, t_max=4)), d)
    counts = torch.tensor(t['counts'])
    assert counts.sum() == 120 and counts.shape[0] == 4
    assert counts[:, 0].sum() == (d.hops < 0).sum()            # column 0 = No Reach


def test_reshuffle_entities_is_a_consistent_relabelling():
    g = torch.Generator().manual_seed(0)
    doc = torch.tensor([[0, -1, 2, 0, 1], [3, 3, -1, -1, 1]])
    query = torch.tensor([[-1, 2], [1, -1]])
    target = torch.tensor([2, 3])
    d2, q2, t2, perm = rc.reshuffle_entities(doc, query, target, 5, g)
    assert torch.equal(d2 < 0, doc < 0) and torch.equal(q2 < 0, query < 0)
    assert torch.equal(d2 == t2[:, None], doc == target[:, None])
    assert torch.equal(perm.sort(-1).values, torch.arange(5).expand(2, 5))
    assert not torch.equal(perm, torch.arange(5).expand(2, 5)) and not torch.equal(perm[0], perm[1])   # relabelled, per example
    assert torch.equal(torch.where(doc >= 0, perm.gather(1, doc.clamp(min=0)), doc), d2)
    assert q2[0, 1] == d2[0, 2] and q2[1, 0] == d2[1, 4]


def test_entity_id_and_token_ids():
    assert rc.entity_id('@entity17') == 17 and rc.entity_id('@placeholder') == -1 and rc.entity_id('the') == -1
    words, ents = torch.tensor([[5, 0, 7]]), torch.tensor([[-1, 3, -1]])
    assert rc.token_ids(words, ents, 100).tolist() == [[5, 103, 7]]


def test_cloze_full_profile_fails_with_fetch_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv('MRC_DATA', str(tmp_path))
    try:
        rc.load_cloze_splits('cnn', 'full')
    except DataError as e:
        assert 'cs.nyu.edu/~kcho/DMQA' in str(e) and 'cnn/questions/training' in str(e)
    else:
        pytest.skip('the CNN questions are staged on this machine')


def test_cloze_quick_pipeline_runs_on_fixtures(tmp_path):
    rec = rc.reasonet_cloze('quick', results_dir=tmp_path/'results')
    assert rec['status'] == 'completed' and rec['meta']['sizes'] == {'train': 2, 'valid': 2, 'test': 2}
    saved = json.loads((tmp_path/'results'/f"{rec['run']}.json").read_text())
    assert 'means nothing' in saved['meta']['scale']


def test_cloze_pipeline_learns_its_two_fixture_questions(tmp_path):
    "Given 10 epochs instead of the quick profile's 3, training, reshuffling and evaluation answer both questions."
    cfg = rc.ClozeRunConfig.make('cnn', 'quick')
    rec = rc.train_reasonet_cloze(replace(cfg, train=replace(cfg.train, epochs=10)), 'quick', results_dir=tmp_path)
    assert rec['final']['test_accuracy'] == 100.0 and rec['history'][-1]['valid_accuracy'] == 100.0


def test_refresh_graph_analysis_recomputes_from_the_best_weights(tmp_path):
    from mrc_book.training import save_split
    torch.manual_seed(0)
    cfg = GraphReasoNetConfig.quick(vocab_size=13, t_max=4)
    model = ReasoNet(cfg)
    seeds = rg.split_seeds(0)
    record = {'run': 'tiny', 'status': 'completed', 'task': 'small', 'notes': [],
              'meta': {'model_config': cfg.to_dict(), 'sizes': {'test': 60}, 'split_seeds': seeds}}
    (tmp_path/'results').mkdir()
    path = tmp_path/'results'/'tiny.json'
    path.write_text(json.dumps(record))
    with pytest.raises(FileNotFoundError, match='no best weights'): rg.refresh_graph_analysis(path)
    save_split(model.state_dict(), tmp_path/'checkpoints'/'tiny', 'best')
    out = rg.refresh_graph_analysis(path)
    test = rg.graph_tensors('small', 60, seeds['test'])
    expected = rg.stop_step_table(model, test)
    assert out['analysis']['stop_steps'] == expected and json.loads(path.read_text())['analysis']['stop_steps'] == expected
    # the wrong answers per path length add up to the expected answer's error count
    acc = rg.evaluate_graphs(model, test)['accuracy']
    assert sum(expected['wrong']) == round(60 * (1 - acc / 100))
    assert 'refresh_graph_analysis' in out['notes'][-1]


class TwoSteps(ReasoNet):
    "Gate sigma = 0.3 at step 1 (`gate_p`); P(Yes) = 0.05 at step 1 and 0.6 at step 2 (the forced stop), for every graph."
    gate_p = 0.3
    def forward(self, doc, doc_mask, query, query_mask, doc_entities=None):
        B = doc.shape[0]
        gate = torch.tensor([torch.logit(torch.tensor(self.gate_p)).item(), 0.]).expand(B, 2)
        yes = torch.tensor([0.05, 0.6]).expand(B, 2)
        return ReasoNetOutput(gate, torch.stack([torch.log1p(-yes), torch.log(yes)], -1), None, None, None, None)


def test_stop_step_table_on_a_model_whose_stops_are_known():
    d = rg.graph_tensors('small', 120, 9)
    per_length = torch.bincount(d.hops + 1)                         # graphs per path length, No Reach first
    assert per_length[0] > 0 and (per_length[1:] > 0).sum() >= 3
    for gate_p, row in ((0.3, 1), (0.7, 0)):                        # the gate stops at the forced step 2, or at step 1
        m = TwoSteps(GraphReasoNetConfig.quick(vocab_size=13, t_max=2)); m.gate_p = gate_p
        t = rg.stop_step_table(m, d)
        counts = torch.tensor(t['counts'])
        assert torch.equal(counts[row], per_length) and counts[1 - row].sum() == 0, counts
        # expected P(Yes) is .3*.05 + .7*.6 = .435 or .7*.05 + .3*.6 = .215: every answer is No, so every reachable
        # graph is wrong and no unreachable one
        assert t['wrong'] == [0] + per_length[1:].tolist()
    assert t['steps'] == [1, 2] and t['hops'] == list(range(-1, len(per_length) - 1))


def test_the_three_inference_modes_on_a_model_whose_steps_disagree():
    d = rg.graph_tensors('small', 400, 4)
    keep = torch.cat([torch.nonzero(d.label == 1)[:, 0], torch.nonzero(d.label == 0)[:10, 0]])   # mostly reachable queries
    d = rg.GraphTensors(d.graph[keep], d.mask[keep], d.query[keep], d.label[keep], d.hops[keep])
    pos = 100 * d.label.float().mean().item()
    assert pos > 90
    m = rg.evaluate_graphs(TwoSteps(GraphReasoNetConfig.quick(vocab_size=13, t_max=2)), d)
    assert m['accuracy'] == pytest.approx(100 - pos)        # expected P(Yes) = .3*.05 + .7*.6 = 0.435: answers No
    assert m['accuracy_threshold'] == pytest.approx(pos)    # gate .3 < .5: stops at the forced step 2, answers Yes
    # Algorithm 1 stops at step 2 (answers Yes) in 70% of draws: about 0.7 pos + 0.3 (100 - pos), near 68; stop
    # probabilities swapped would give about 32
    assert abs(m['accuracy_sample'] - (0.7 * pos + 0.3 * (100 - pos))) < 12, m
    assert m['mean_stop_step'] == 2 and m['roc_auc'] == 0.5


def test_full_profile_resume_under_other_epochs_is_refused_not_restarted(tmp_path):
    "The full profile's run name carries its epochs: --resume with other --epochs would silently start another run."
    ck = tmp_path / 'checkpoints' / 'reasonet-graphs-small-reasonet-full-e2-seed0'
    ck.mkdir(parents=True); (ck / 'checkpoint.json').write_text('{}')
    cfg = rg.GraphRunConfig.make('small', 'reasonet', 'full', epochs=3)
    assert cfg.run_name('full', 0) == 'reasonet-graphs-small-reasonet-full-e3-seed0'
    with pytest.raises(DataError, match='full-e3-seed0: no checkpoint of .*, but reasonet-graphs-small-reasonet-full-e2-seed0 has one'):
        rg.train_reasonet_graphs(cfg, 'full', resume=True, results_dir=tmp_path / 'results')
    # another run (other schedule) is not mistaken for it
    other = rg.GraphRunConfig.make('small', 'reasonet', 'full', epochs=3, lr_halve_every=2)
    rg._refuse_renamed_resume(other.run_name('full', 0), tmp_path / 'checkpoints', 20)


def test_roc_ranks_confident_answers_that_float32_rounds_to_one():
    "P(Yes) of 1 - 1e-9 and of 1 - 1e-12 are both 1.0 in float32; the float64 log-odds keep them apart."
    from mrc_book.metrics import roc_auc
    model = ReasoNet(GraphReasoNetConfig.quick(vocab_size=13, t_max=2))
    z = torch.tensor([25., 30., 21., 28.])   # answer logits of Yes at both steps; labels: the higher two are Yes
    ans = torch.stack([torch.nn.functional.logsigmoid(-z), torch.nn.functional.logsigmoid(z)], -1)   # [B, 2]
    out = ReasoNetOutput(torch.zeros(4, 2), ans.unsqueeze(1).expand(4, 2, 2), None, None, None, None)
    y = torch.tensor([False, True, False, True])
    p_yes = model.predict(out, 'expected')[0][:, 1]
    assert (p_yes == 1.0).all()                                   # float32: every answer ties at 1
    elp = model.expected_log_probs(out)
    assert elp.dtype == torch.float64
    torch.testing.assert_close(elp.exp().sum(-1), torch.ones(4, dtype=torch.float64))
    assert roc_auc(p_yes, y) == 0.5 and roc_auc(elp[:, 1] - elp[:, 0], y) == 1.0


def test_cloze_query_entity_that_no_story_has_gets_a_candidate_slot(tmp_path, monkeypatch):
    "The DeepMind entity map numbers query entities too; one beyond every story's ids must not overflow the candidates."
    src = sorted((Path(__file__).parent/'fixtures'/'cnn'/'questions'/'validation').glob('*.question'))[0]
    text = src.read_text(encoding='utf-8').replace('to reach the semifinals of the @placeholder',
                                                   'to reach the semifinals of the @placeholder with @entity57', 1)
    assert '@entity57' in text
    q = tmp_path/'x.question'; q.write_text(text + '@entity57:Somebody\n', encoding='utf-8')
    from mrc_book.data.cloze import parse_cloze_question
    ex = parse_cloze_question(q)
    assert '@entity57' in ex.query and all(rc.entity_id(w) < 57 for w in ex.context)
    monkeypatch.setattr(rc, 'load_cloze_splits', lambda corpus, profile: {'train': [ex], 'valid': [ex], 'test': [ex]})
    cfg = rc.ClozeRunConfig.make('cnn', 'quick')   # 50 candidate slots in the quick model
    rec = rc.train_reasonet_cloze(cfg, 'quick', results_dir=tmp_path/'results')
    assert rec['status'] == 'completed' and rec['meta']['num_candidates'] == 58
