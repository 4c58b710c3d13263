"""The trainer: exact resumption, split checkpoints, early stopping, clipping, LR schedule, EMA, run records."""
import json
import random
import re
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mrc_book.training import (CheckpointError, EMA, TrainConfig, Trainer, bf16_supported, load_record, load_records, load_split,
                               record_problems, register_experiment, run_experiment, run_setting, EXPERIMENTS, save_split, set_seed,
                               write_record)


def toy(n=96, d=5, seed=0, dropout=0.3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, 0] - 0.7 * x[:, 2] > 0).long()
    set_seed(seed)
    model = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 2))

    def batches(epoch, gen):
        order = torch.randperm(n, generator=gen)
        return [(x[order[i:i + 8]], y[order[i:i + 8]]) for i in range(0, n, 8)]   # 12 steps an epoch

    def loss_fn(m, b):   # scaled by draws of Python's and NumPy's global RNGs: a resume must restore those too
        return nn.functional.cross_entropy(m(b[0]), b[1]) * (1 + 0.1 * (random.random() + np.random.rand()))

    def evaluate(m, split):
        logits = m(x)
        return {'accuracy': 100 * (logits.argmax(-1) == y).float().mean().item(),
                'loss': nn.functional.cross_entropy(logits, y).item()}
    return model, batches, loss_fn, evaluate


def make(tmp, epochs=4, part_bytes=None, evaluate=None, **cfg):
    model, batches, loss_fn, ev = toy()
    config = TrainConfig(epochs=epochs, lr=0.05, seed=0, verbose=False, progress=False, threads=1, **cfg)
    kw = {'checkpoint_part_bytes': part_bytes} if part_bytes else {}
    return model, Trainer(model, config, batches, loss_fn, evaluate or ev, 'toy', results_dir=tmp / 'results',
                          meta={'dataset': 'toy-data', 'task': 7}, **kw)


def no_seconds(history): return [{k: v for k, v in r.items() if k != 'seconds'} for r in history]


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa: assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize('stop_at', [5, 12, 30])   # mid-epoch, exactly at an epoch's end, mid-epoch later
@pytest.mark.parametrize('extra', [{}, {'ema': 0.9, 'clip_norm': 1.0, 'lr_halve_every': 1}])
def test_resume_is_exact(tmp_path, stop_at, extra):
    full_model, t = make(tmp_path / 'full', **extra)
    full = t.fit()
    cut_model, t = make(tmp_path / 'cut', stop_after_steps=stop_at, **extra)
    rec = t.fit()
    assert rec['status'] == 'interrupted' and rec['final'] is None and rec['steps'] == stop_at
    assert load_record(tmp_path / 'cut' / 'results' / 'toy-quick-seed0.json')['status'] == 'interrupted'
    resumed_model, t = make(tmp_path / 'cut', **extra)
    set_seed(999); random.random(); np.random.rand(3); torch.rand(7)   # disturb every global RNG before resuming
    resumed = t.fit(resume=True)
    assert resumed['status'] == 'completed'
    assert_same_weights(full_model, resumed_model)
    assert no_seconds(full['history']) == no_seconds(resumed['history'])
    assert full['final'] == resumed['final']
    assert full['steps'] == resumed['steps'] == 4 * 12


def test_resume_from_twice_interrupted_run(tmp_path):
    full_model, t = make(tmp_path / 'a'); full = t.fit()
    for stop in (7, 20):
        _, t = make(tmp_path / 'b', stop_after_steps=stop); t.fit(resume=True)
    m, t = make(tmp_path / 'b'); rec = t.fit(resume=True)
    assert_same_weights(full_model, m)
    assert no_seconds(rec['history']) == no_seconds(full['history'])


def test_time_budget_stops_after_the_crossing_step(tmp_path):
    _, t = make(tmp_path, time_budget=0.0)
    rec = t.fit()
    assert rec['status'] == 'interrupted' and rec['steps'] == 1 and rec['history'] == []


def test_checkpoint_split_into_small_parts(tmp_path):
    _, t = make(tmp_path, epochs=1, part_bytes=2048)
    t.fit()
    manifest = json.loads((t.checkpoint_dir / 'checkpoint.json').read_text())
    assert len(manifest['parts']) > 2 and all(p['bytes'] <= 2048 for p in manifest['parts'])
    assert sum(p['bytes'] for p in manifest['parts']) == manifest['bytes']
    files = sorted(q.name for q in t.checkpoint_dir.glob('checkpoint.*.part*'))
    assert files == sorted(p['file'] for p in manifest['parts'])   # no parts of older checkpoints left behind
    assert load_split(t.checkpoint_dir)['epoch'] == 1


def test_split_roundtrip_and_corruption(tmp_path):
    obj = {'w': torch.randn(3000), 'n': 3}
    save_split(obj, tmp_path, 'x', part_bytes=4000)
    assert torch.equal(load_split(tmp_path, 'x')['w'], obj['w'])
    part = sorted(tmp_path.glob('x.*.part*'))[1]
    data = bytearray(part.read_bytes()); data[10] ^= 1; part.write_bytes(bytes(data))
    with pytest.raises(ValueError, match='corrupt'): load_split(tmp_path, 'x')
    part.unlink()
    with pytest.raises(CheckpointError, match='missing'): load_split(tmp_path, 'x')
    manifest = save_split(obj, tmp_path, 'x', part_bytes=4000)
    m = json.loads(manifest.read_text()); m['sha256'] = '0' * 64; manifest.write_text(json.dumps(m))   # the whole file's checksum
    with pytest.raises(CheckpointError, match='wrong content'): load_split(tmp_path, 'x')


def test_early_stopping_and_best_state(tmp_path):
    scores = iter([50, 60, 55, 58, 59, 99, 99])   # best at epoch 2, then 3 epochs without improvement
    seen = {}
    def evaluate(m, split):
        if split == 'test':
            seen['test_weights'] = {k: v.clone() for k, v in m.state_dict().items()}
            return {'accuracy': 1.0}
        return {'accuracy': float(next(scores))}
    model, t = make(tmp_path, epochs=10, patience=3, evaluate=evaluate)
    rec = t.fit()
    assert [r['valid_accuracy'] for r in rec['history']] == [50, 60, 55, 58, 59]
    f = rec['final']
    assert rec['stopped_early'] and rec['stopped_by'] == 'patience' and 'stopped_early' not in f
    assert f['epochs'] == 5 and f['best_epoch'] == 2 and f['best_valid_accuracy'] == 60
    assert f['test_accuracy'] == 1.0
    # the test split was scored with the weights of epoch 2, which the model holds afterwards
    for k, v in seen['test_weights'].items(): assert torch.equal(v, model.state_dict()[k])


def test_min_mode(tmp_path):
    losses = iter([3.0, 2.0, 2.5])
    _, t = make(tmp_path, epochs=3, metric='loss', metric_mode='min',
                evaluate=lambda m, s: {'loss': next(losses) if s == 'valid' else 0.0})
    assert t.fit()['final']['best_epoch'] == 2


def one_step_grad(tmp_path, **cfg):
    "The update SGD(lr=1) makes from a gradient of (3, -4, 0.5) (norm 5.02), under the clipping in `cfg`."
    w = nn.Linear(3, 1, bias=False)
    with torch.no_grad(): w.weight.zero_()
    g = torch.tensor([3.0, -4.0, 0.5])
    config = TrainConfig(epochs=1, optimizer='sgd', lr=1.0, verbose=False, progress=False, threads=1, **cfg)
    t = Trainer(w, config, lambda e, gen: [None], lambda m, b: (m.weight[0] * g).sum(),
                lambda m, s: {'accuracy': 0.0}, 'clip', results_dir=tmp_path)
    t.fit()
    return -w.weight.detach()[0]


def test_clip_value(tmp_path):
    torch.testing.assert_close(one_step_grad(tmp_path, clip_value=1.0), torch.tensor([1.0, -1.0, 0.5]))


def test_clip_norm(tmp_path):
    g = torch.tensor([3.0, -4.0, 0.5])
    torch.testing.assert_close(one_step_grad(tmp_path, clip_norm=1.0), g / g.norm(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(one_step_grad(tmp_path, clip_norm=100.0), g)   # under the threshold: unchanged


def test_lr_halving(tmp_path):
    _, t = make(tmp_path, epochs=5, lr_halve_every=2)
    rec = t.fit()
    assert [r['lr'] for r in rec['history']] == [0.05, 0.05, 0.025, 0.025, 0.0125]
    c = TrainConfig(lr=1.0, lr_step=25, lr_decay=0.5)
    assert [c.epoch_lr(e) for e in (0, 24, 25, 50, 75)] == [1.0, 1.0, 0.5, 0.25, 0.125]


def test_step_schedule_multiplies_the_lr(tmp_path):
    lrs = []
    class Spy(torch.optim.SGD): pass
    w = nn.Linear(1, 1, bias=False)
    config = TrainConfig(epochs=1, optimizer='sgd', lr=0.1, verbose=False, progress=False)
    t = Trainer(w, config, lambda e, gen: [None] * 3, lambda m, b: (lrs.append(t.optimizer.param_groups[0]['lr']), m.weight.sum())[1],
                lambda m, s: {'accuracy': 0.0}, 'sched', results_dir=tmp_path, step_schedule=lambda step: 1 / (step + 1))
    rec = t.fit()
    assert lrs == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert rec['history'][0]['lr'] == pytest.approx(0.1 / 3)   # the record shows the lr of the epoch's last step


def test_ema_known_values():
    lin = nn.Linear(1, 1, bias=False); nn.init.zeros_(lin.weight)
    ema, opt = EMA(lin, 0.5), torch.optim.SGD(lin.parameters(), lr=1.0)
    seen = []
    for _ in range(3):
        opt.zero_grad(); lin.weight.sum().backward(); opt.step(); ema.update(lin)
        seen.append(ema.shadow['weight'].item())
    # weights -1, -2, -3: shadow 0.5*0 + 0.5*(-1), then 0.5*(-0.5) + 0.5*(-2), then 0.5*(-1.25) + 0.5*(-3)
    assert seen == [-0.5, -1.25, -2.125]


def test_ema_weights_are_evaluated_and_kept(tmp_path):
    calls = iter(range(100))
    evaluated = []
    def evaluate(m, split):
        evaluated.append({k: v.clone() for k, v in m.state_dict().items()})
        return {'accuracy': float(next(calls))}   # every epoch is better: the last one is the best
    model, t = make(tmp_path, epochs=2, ema=0.9, evaluate=evaluate)
    t.fit()
    live = t.ema.shadow   # the shadow after the last step
    for k, v in live.items():
        assert torch.equal(evaluated[-1][k], v) and torch.equal(evaluated[-2][k], v)   # valid and test saw the shadow
        assert torch.equal(model.state_dict()[k], v)                                    # and the model keeps it
    from mrc_book.training import load_best_state
    for k, v in load_best_state(t.checkpoint_dir).items(): assert torch.equal(v, live[k])


def test_record_fields(tmp_path):
    _, t = make(tmp_path, epochs=2)
    rec = t.fit()
    saved = load_record(tmp_path / 'results' / 'toy-quick-seed0.json')
    assert saved == json.loads(json.dumps(rec))
    for key in ('experiment', 'model', 'dataset', 'task', 'profile', 'seed', 'config', 'git_commit', 'torch', 'device',
                'hardware', 'wall_seconds', 'status', 'history', 'final', 'created'):
        assert key in saved, key
    assert (saved['experiment'], saved['model'], saved['dataset'], saved['task']) == ('toy', 'Sequential', 'toy-data', 7)
    assert saved['profile'] == 'quick' and saved['setting'] is None and saved['seed'] == 0 and saved['status'] == 'completed'
    assert saved['config']['lr'] == 0.05 and saved['config']['epochs'] == 2
    assert saved['git_commit'] == 'unknown' or len(saved['git_commit'].removesuffix('-dirty')) == 40
    assert saved['torch'] == torch.__version__ and saved['device'] and saved['hardware']['cpu_count'] >= 1
    # two CPUs can share a name ('AMD EPYC') and not a speed: the record also says which one and whether it has bf16 kernels
    hw = saved['hardware']
    assert hw['cpu_id'] is None or re.fullmatch(r'family \d+ model \d+', hw['cpu_id'])
    assert isinstance(hw['cpu_bf16_kernels'], bool)
    assert [r['epoch'] for r in saved['history']] == [1, 2]
    assert set(saved['history'][0]) >= {'epoch', 'train_loss', 'lr', 'seconds', 'valid_accuracy', 'valid_loss'}
    assert {'test_accuracy', 'test_loss', 'best_valid_accuracy', 'epochs'} <= set(saved['final'])
    assert 0 <= saved['final']['test_accuracy'] <= 100
    assert saved['created'].endswith('+00:00')
    assert [r['run'] for r in load_records(tmp_path / 'results' / '*.json')] == ['toy-quick-seed0']


@pytest.mark.parametrize('supported', [True, False])
def test_bf16_autocast_where_supported_else_a_note(tmp_path, monkeypatch, supported):
    import mrc_book.training as training
    monkeypatch.setattr(training, 'bf16_supported', lambda device: supported)
    model, batches, loss_fn, evaluate = toy()
    seen = []   # dtype of the first layer's output inside the trainer's loss and evaluation calls
    def spy_loss(m, b): seen.append(m[0](b[0]).dtype); return loss_fn(m, b)
    def spy_eval(m, split): seen.append(m[0](torch.zeros(1, 5)).dtype); return evaluate(m, split)
    config = TrainConfig(epochs=1, lr=0.05, seed=0, verbose=False, progress=False, threads=1, bf16=True)
    t = Trainer(model, config, batches, spy_loss, spy_eval, 'toy', results_dir=tmp_path / 'results')
    if supported: rec = t.fit()
    else:
        with pytest.warns(UserWarning, match='bf16'): rec = t.fit()
    assert set(seen) == {torch.bfloat16 if supported else torch.float32} and len(seen) == 12 + 2
    assert any('bf16' in n for n in rec['notes']) == (not supported)
    assert all(p.dtype == torch.float32 for p in model.parameters())    # the weights themselves stay float32
    assert math.isfinite(rec['final']['test_loss']) and rec['config']['bf16'] is True


def test_bf16_supported():
    assert bf16_supported('cuda') == (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    assert not bf16_supported('meta')
    assert isinstance(bf16_supported('cpu'), bool)
    cpuinfo = Path('/proc/cpuinfo')
    if cpuinfo.is_file():   # Linux: oneDNN's bf16 kernels need AVX-512 (avx512f); with native bf16 instructions they exist
        flags = set(cpuinfo.read_text().split())
        if 'avx512f' not in flags: assert not bf16_supported('cpu')
        if 'avx512_bf16' in flags or 'amx_bf16' in flags: assert bf16_supported('cpu')


def test_registry_and_run_experiment(tmp_path):
    register_experiment('echo-test', lambda **kw: kw, 'echoes')
    try:
        out = run_experiment('echo-test', profile='full', seed=5, results_dir=tmp_path)
        assert out == {'profile': 'full', 'device': 'cpu', 'resume': False, 'time_budget': None, 'seed': 5,
                       'results_dir': tmp_path}
        with pytest.raises(ValueError): run_experiment('echo-test', profile='medium')
    finally:
        del EXPERIMENTS['echo-test']
    with pytest.raises(KeyError, match='unknown experiment'): run_experiment('no-such-experiment')


def test_set_seed_reproduces():
    "torch, Python's random and NumPy all restart from the seed."
    import random
    draw = lambda: (torch.rand(3), random.random(), np.random.rand(3))
    set_seed(11); a = draw()
    set_seed(11); b = draw()
    assert torch.equal(a[0], b[0]) and a[1] == b[1] and (a[2] == b[2]).all()
    set_seed(12); assert not torch.equal(a[0], draw()[0])


def test_git_commit_ignores_run_records(tmp_path):
    "A changed run record under results/ leaves the commit clean; a changed source file makes it -dirty."
    import subprocess
    from mrc_book.training import git_commit
    git = lambda *a: subprocess.run(['git', *a], cwd=tmp_path, check=True, capture_output=True)
    git('init', '-q'); git('config', 'user.email', 't@t'); git('config', 'user.name', 't')
    (tmp_path/'results').mkdir(); (tmp_path/'results'/'r.json').write_text('{}'); (tmp_path/'code.py').write_text('x = 1\n')
    git('add', '.'); git('commit', '-qm', 'init')
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_commit(tmp_path) == head
    (tmp_path/'results'/'r.json').write_text('{"a": 1}')
    assert git_commit(tmp_path) == head
    (tmp_path/'code.py').write_text('x = 2\n')
    assert git_commit(tmp_path) == head + '-dirty'
    (tmp_path/'code.py').write_text('x = 1\n')
    assert git_commit(tmp_path) == head
    (tmp_path/'new_module.py').write_text('y = 1\n')   # code that runs but was never committed
    assert git_commit(tmp_path) == head + '-dirty'
    (tmp_path/'new_module.py').unlink(); (tmp_path/'results'/'new-run.json').write_text('{}')   # a new record is not code
    assert git_commit(tmp_path) == head
    (tmp_path/'logs').mkdir(); (tmp_path/'logs'/'run.log').write_text('epoch 1\n')   # nor is a run's log
    assert git_commit(tmp_path) == head
    (tmp_path/'pkg').mkdir(); (tmp_path/'pkg'/'new.py').write_text('z = 1\n')       # new code in a new folder is
    assert git_commit(tmp_path) == head + '-dirty'


def test_resume_refuses_another_recipe(tmp_path):
    "A checkpoint continues only under the same training settings; how long and where it runs may change."
    from mrc_book.training import ResumeMismatch
    _, t = make(tmp_path, stop_after_steps=5); t.fit()
    _, t = make(tmp_path, weight_decay=0.1)
    with pytest.raises(ResumeMismatch, match=r"weight_decay 0\.0 there, 0\.1 here"): t.fit(resume=True)
    _, t = make(tmp_path, epochs=6, stop_after_steps=20)   # more epochs and another stop: allowed
    assert t.fit(resume=True)['steps'] == 20


def test_ema_averages_tied_weights_under_both_names():
    "A weight shared by two modules appears twice in state_dict; both entries of the shadow are averages."
    lin = nn.Linear(3, 3, bias=False)
    model = nn.ModuleDict({'a': lin, 'b': nn.Linear(3, 3, bias=False)})
    model['b'].weight = lin.weight   # tied
    ema = EMA(model, decay=0.5)
    start = lin.weight.detach().clone()
    with torch.no_grad(): lin.weight.add_(1.0)
    ema.update(model)
    for k in ('a.weight', 'b.weight'): torch.testing.assert_close(ema.shadow[k], start + 0.5)


def test_a_nan_validation_metric_is_never_the_best(tmp_path):
    "A diverged epoch (NaN metric) must not become the best state, which no later epoch could then beat."
    values = iter([float('nan'), 60.0, 55.0])
    _, t = make(tmp_path, epochs=3, evaluate=lambda m, split: {'accuracy': next(values, 50.0), 'loss': 1.0})
    rec = t.fit()
    assert rec['final']['best_epoch'] == 2


def test_run_experiment_passes_epochs_only_where_taken(tmp_path):
    "`mrc train --epochs N` reaches an experiment that takes `epochs` (rnet-squad) and is refused by name elsewhere."
    import inspect
    from mrc_book.training import UnsupportedOption
    from mrc_book.experiments.rnet_squad import rnet_squad
    assert 'epochs' in inspect.signature(rnet_squad).parameters
    register_experiment('echo-epochs', lambda profile, device, resume, time_budget, seed, results_dir, epochs=None:
                        {'epochs': epochs}, 'echoes epochs')
    register_experiment('echo-fixed', lambda **kw: kw, 'no epochs')
    try:
        assert run_experiment('echo-epochs', epochs=44, resume=True, results_dir=tmp_path) == {'epochs': 44}
        with pytest.raises(UnsupportedOption, match="'echo-fixed' does not take epochs"):
            run_experiment('echo-fixed', epochs=44, results_dir=tmp_path)
    finally:
        del EXPERIMENTS['echo-epochs'], EXPERIMENTS['echo-fixed']


def test_a_completed_run_continues_to_more_epochs_exactly(tmp_path):
    "`--resume --epochs N` on a finished run: the same weights and history as a run planned with N epochs from the start."
    full_model, t = make(tmp_path / 'a', epochs=4); full = t.fit()
    _, t = make(tmp_path / 'b', epochs=2); assert t.fit()['status'] == 'completed'
    more_model, t = make(tmp_path / 'b', epochs=4); more = t.fit(resume=True)
    assert more['status'] == 'completed' and more['steps'] == full['steps']
    assert_same_weights(full_model, more_model)
    assert no_seconds(full['history']) == no_seconds(more['history'])


def test_train_loss_is_the_mean_of_that_epochs_steps_also_across_a_resume(tmp_path):
    "Step losses 1..12 in epoch 1 and 13..24 in epoch 2 (lr 0, so nothing moves): the history says 6.5 and 18.5."
    def run(d, **kw):
        w = nn.Linear(1, 1, bias=False)
        cfg = TrainConfig(epochs=2, optimizer='sgd', lr=0.0, verbose=False, progress=False, threads=1, **kw)
        return Trainer(w, cfg, lambda epoch, gen: [12 * epoch + i for i in range(1, 13)],
                       lambda m, b: m.weight.sum() * 0 + float(b), lambda m, s: {'accuracy': 0.0}, 'loss', results_dir=d/'r')
    straight = [h['train_loss'] for h in run(tmp_path/'a').fit()['history']]
    run(tmp_path/'b', stop_after_steps=5).fit()
    resumed = [h['train_loss'] for h in run(tmp_path/'b').fit(resume=True)['history']]
    assert straight == resumed == [6.5, 18.5]


def test_run_main_turns_data_and_resume_errors_into_one_line_and_lets_others_through():
    from mrc_book.data.sources import DataError
    from mrc_book.training import ResumeMismatch, run_main
    for err in (DataError('x.json: missing; fetch it'), ResumeMismatch('ck: lr 0.1 there, 0.2 here')):
        def main(): raise err
        with pytest.raises(SystemExit) as e: run_main(main, 'prog')
        assert e.value.code == f'prog: error: {err}' and '\n' not in e.value.code   # SystemExit(str): exit status 1
    def bug(): raise KeyError('a bug is a traceback, not a tidy line')
    with pytest.raises(KeyError): run_main(bug, 'prog')
    assert run_main(lambda: 7, 'prog') == 7


def test_finer_profile_is_recorded_as_setting(tmp_path):
    "An experiment's own profile ('reduced') names the run and is kept as `setting`; the record's profile is 'full'."
    model, batches, loss_fn, ev = toy()
    config = TrainConfig(epochs=1, lr=0.05, seed=0, verbose=False, progress=False, threads=1)
    rec = Trainer(model, config, batches, loss_fn, ev, 'toy', profile='reduced', results_dir=tmp_path/'results').fit()
    assert (rec['run'], rec['profile'], rec['setting'], run_setting(rec)) == ('toy-reduced-seed0', 'full', 'reduced', 'reduced')
    assert record_problems(rec) == []


def test_committed_records_are_citable():
    "Every run record in results/ (and its folders) has the record's keys, per-epoch history and a numbers-only `final`."
    from pathlib import Path
    results = Path(__file__).resolve().parent.parent/'results'
    paths = [p for p in sorted(results.rglob('*.json')) if not p.name.startswith('bench-') and not p.name.endswith('.predictions.json')
             and 'checkpoints' not in p.relative_to(results).parts]   # a run with results_dir='results/x' checkpoints to results/checkpoints
    assert len(paths) > 300
    problems = {p.name: record_problems(json.loads(p.read_text())) for p in paths}
    assert {k: v for k, v in problems.items() if v} == {}


def test_old_records_read_with_stop_fields_beside_final(tmp_path):
    "A record written before `stopped_early`/`stopped_by` moved out of `final` reads as a new one."
    old = {'run': 'x', 'status': 'completed', 'final': {'test_error': 1.0, 'stopped_early': True, 'stopped_by': None}}
    r = load_record(write_record(tmp_path/'x.json', old))
    assert r['final'] == {'test_error': 1.0} and r['stopped_early'] is True and r['stopped_by'] is None
    new = {'run': 'y', 'status': 'completed', 'final': {'test_error': 1.0}, 'stopped_early': False, 'stopped_by': None}
    assert load_record(write_record(tmp_path/'y.json', new)) == new


def test_a_run_whose_every_validation_is_nan_ends_diverged(tmp_path):
    "No epoch can be kept, so nothing is tested: the record says 'diverged', with a note, and is still a valid record."
    model, t = make(tmp_path, epochs=2, evaluate=lambda m, split: {'accuracy': float('nan'), 'loss': float('nan')})
    rec = t.fit()
    assert rec['status'] == 'diverged' and rec['final'] is None and len(rec['history']) == 2
    assert any('was NaN' in n for n in rec['notes']) and record_problems(rec) == []
    assert record_problems({**rec, 'status': 'completed'}) == ["'completed' run without 'final'"]


def test_subnormals_are_flushed_during_fit_only(tmp_path):
    "flush_denormal: a subnormal product is 0 inside fit (where the CPU supports it) and not after, nor with it off."
    tiny = lambda: (torch.tensor([1e-30]) * torch.tensor([1e-10])).item()   # 1e-40: subnormal in float32
    assert tiny() != 0
    seen = []
    for flush in (True, False):
        model, batches, loss_fn, ev = toy()
        def spy(m, b): seen.append((flush, tiny())); return loss_fn(m, b)
        cfg = TrainConfig(epochs=1, lr=0.05, seed=0, verbose=False, progress=False, threads=1, flush_denormal=flush)
        Trainer(model, cfg, batches, spy, ev, 'toy', results_dir=tmp_path / str(flush)).fit()
        assert tiny() != 0   # restored after fit
    supported = torch.set_flush_denormal(True); torch.set_flush_denormal(False)
    assert {v == 0 for f, v in seen if f} == {supported} and {v == 0 for f, v in seen if not f} == {False}


def test_grad_norm_and_clipped_share_are_each_epochs_own_also_across_a_resume(tmp_path):
    "Gradient norms 1..12 in epoch 1 and 13..24 in epoch 2 (lr 0) under clip_norm 6: means 6.5 and 18.5, clipped 50% and 100%."
    def run(d, clip_norm=6.0, **kw):
        w = nn.Linear(1, 1, bias=False); nn.init.ones_(w.weight)
        cfg = TrainConfig(epochs=2, optimizer='sgd', lr=0.0, clip_norm=clip_norm, verbose=False, progress=False, threads=1, **kw)
        return Trainer(w, cfg, lambda epoch, gen: [12 * epoch + i for i in range(1, 13)],
                       lambda m, b: m.weight.sum() * float(b), lambda m, s: {'accuracy': 0.0}, 'norm', results_dir=d/'r')
    norms = lambda rec: [(h['grad_norm'], h['clipped']) for h in rec['history']]
    straight = norms(run(tmp_path/'a').fit())
    run(tmp_path/'b', stop_after_steps=8).fit()   # after a clipped step: the checkpoint must carry the count
    resumed = norms(run(tmp_path/'b').fit(resume=True))
    assert straight == resumed == [(6.5, 50.0), (18.5, 100.0)]
    assert 'grad_norm' not in run(tmp_path/'c', clip_norm=None).fit()['history'][0]   # no clip: no such columns
