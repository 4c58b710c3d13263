"Fast checks of the EntNet world-model and CBT experiment pipelines and their baselines (MemN2N, LSTM reader)."
import pytest, torch
from dataclasses import replace
from mrc_book.data.sources import DataError
from mrc_book.data.worldmodel import generate_world_stories
from mrc_book.experiments import entnet_cbt as cbt
from mrc_book.experiments.entnet_world import (WorldRun, world_tensors, make_world_model, train_world_run, WORLD_WORDS,
                                              world_train_config, split_stories, world_errors)
from mrc_book.models.memn2n import MemN2N
from mrc_book.models.lstm_reader import flatten_story_query
from mrc_book.training import TrainConfig

PAD = cbt.PAD

def test_candidate_windows_by_hand():
    ctx = [['a', 'b', 'X', 'c'], ['d', 'X', 'e']]
    assert cbt.candidate_windows(ctx, ['X', 'a']) == [[PAD, PAD, 'a', 'b', 'x'], ['a', 'b', 'x', 'c', 'd'],
                                                       ['c', 'd', 'x', 'e', PAD]]
    assert cbt.candidate_windows(ctx, ['e'], b=3) == [['x', 'e', PAD]]
    assert cbt.query_window(['the', 'XXXXX', 'was']) == [PAD, 'the', 'xxxxx', 'was', PAD]
    with pytest.raises(ValueError): cbt.candidate_windows(ctx, ['a'], b=2)

def test_cbt_full_profile_fails_with_fetch_command(monkeypatch):
    monkeypatch.setattr(cbt, 'find_file', lambda relpath: None)
    with pytest.raises(DataError, match='mrc data fetch cbt'): cbt.entnet_cbt(profile='full')

def test_cbt_quick_pipeline(tmp_path):
    out = cbt.entnet_cbt(profile='quick', results_dir=tmp_path)
    assert out['status'] == 'completed' and set(out['final']) == {'NE_test_accuracy', 'CN_test_accuracy'}
    assert (tmp_path/'entnet-cbt-quick-NE-seed0.json').is_file()
    # the quick profile tests on its 2 training questions, which it learns: anything below 100 means an answer index
    # that does not point at its candidate, or an argmax over the wrong axis
    assert out['final'] == {'NE_test_accuracy': 100.0, 'CN_test_accuracy': 100.0}

def test_memn2n_single_hop_by_hand():
    net = MemN2N(4, dim=2, hops=1, encoder='bow', temporal=False)
    with torch.no_grad():
        net.embeddings[0] = torch.tensor([[0., 0], [1, 0], [0, 1], [1, 1]])
        net.embeddings[1] = torch.tensor([[0., 0], [2, 0], [0, 3], [1, -1]])
        tr = net.trace(torch.tensor([[[1, 2], [1, 0], [0, 0]]]), torch.tensor([[1, 3]]))
    torch.testing.assert_close(tr['attention'][0, 0], torch.tensor([0.7311, 0.2689, 0.0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(tr['logits'][0], torch.tensor([0., 8., 9.5796, 0.8068]), atol=1e-4, rtol=0)

def test_lstm_flatten_order():
    story = torch.tensor([[[3, 4, 0], [5, 0, 0]]]); query = torch.tensor([[1, 2, 0]])
    tokens, lengths = flatten_story_query(story, query)
    assert tokens.tolist() == [[3, 4, 5, 1, 2]] and lengths.tolist() == [5]

@pytest.mark.parametrize('model', ['entnet', 'memn2n', 'lstm'])
def test_world_models_shapes(model):
    d = world_tensors(generate_world_stories(4, 10, seed=0))
    assert d.story.shape == (8, 10, 4)
    torch.manual_seed(0)
    net = make_world_model(WorldRun(model, 10)).eval()
    logits = net(d.story, d.query)
    assert logits.shape == (8, len(WORLD_WORDS))
    # padding sentences after the story's end change nothing (a story of 10 read in a batch padded to 13)
    padded = torch.cat([d.story, torch.zeros(8, 3, 4, dtype=d.story.dtype)], 1)
    torch.testing.assert_close(net(padded, d.query), logits, atol=1e-5, rtol=0)

def test_world_run_record(tmp_path):
    tc = TrainConfig(epochs=1, batch_size=8, lr=0.01, metric='error', metric_mode='min', threads=1, verbose=False)
    run = WorldRun('entnet', (4, 6), test_T=[6, 8], n_train=16, n_valid=4, n_test=4, train=tc)
    rec = train_world_run(run, 'quick', results_dir=tmp_path/'results')
    assert rec['status'] == 'completed' and {'test_error_T6', 'test_error_T8'} <= set(rec['final'])
    assert 0 <= rec['final']['test_error'] <= 100 and rec['meta']['test_T'] == [6, 8]
    f = rec['final']   # the headline error is the mean over the test lengths, each on its own stories
    assert f['test_error'] == pytest.approx((f['test_error_T6'] + f['test_error_T8']) / 2)
    assert rec['meta']['sizes'] == {'train': 32, 'valid': 8, 'test_T6': 8, 'test_T8': 8}
    # each length's error is the run's best weights on stories of that length (4 stories, 2 questions each, seed 0)
    from mrc_book.training import load_completed_run
    _, best = load_completed_run(tmp_path/'results'/f"{rec['run']}.json")
    model = make_world_model(run); model.load_state_dict(best); model.eval()
    for T in (6, 8):
        stories = split_stories('test', 4, T, 0)
        assert len(stories) == 8 and all(len(e.story) == T for e in stories)
        assert world_errors(model, world_tensors(stories))[0] == pytest.approx(f[f'test_error_T{T}'])


def test_world_run_lr_schedule_names_and_factors():
    "The paper's schedule halves every 10,000 updates and is unnamed; any other schedule is named in the run name."
    paper = WorldRun('entnet', 10)
    assert paper.name == 'entnet-T10' and paper.lr_schedule == 'halved every 10,000 updates'
    assert [paper.step_schedule(s) for s in (0, 9_999, 10_000, 25_000)] == [1.0, 1.0, 0.5, 0.25]
    const = WorldRun('entnet', 10, train=world_train_config(0.001), halve_every=None, tag='n50k-e40')
    assert const.name == 'entnet-T10-lr0.001-lrconst-n50k-e40' and const.lr_schedule == 'constant'
    assert const.step_schedule(10**6) == 1.0
    assert WorldRun('lstm', 20, halve_every=50_000).name == 'lstm-T20-half50k'
    with pytest.raises(ValueError, match="halve_every"): WorldRun("entnet", 10, halve_every=0)
    late = WorldRun('entnet', 40, train=world_train_config(0.001), first_halving=125_000, tag='n50k-e50')
    assert late.name == 'entnet-T40-lr0.001-const125k-n50k-e50'
    assert late.lr_schedule == 'constant for 125,000 updates, then halved every 10,000 updates'
    assert [late.step_schedule(s) for s in (124_999, 125_000, 134_999, 135_000, 156_249)] == [1.0, 0.5, 0.5, 0.25, 0.0625]
    with pytest.raises(ValueError, match="first_halving"): WorldRun("entnet", 10, halve_every=None, first_halving=5)
    rand = WorldRun('entnet', (4, 20), train=world_train_config(0.001), first_halving=125_000, bucket=1, tag='n50k-e50')
    assert rand.name == 'entnet-T4to20-lr0.001-const125k-randbatch-n50k-e50'
    with pytest.raises(ValueError, match="bucket"): WorldRun('entnet', 10, bucket=0)
    tight = replace(world_train_config(0.001), clip_norm=1.25)   # another clipping must be in the name (its tag)
    assert WorldRun('entnet', (4, 20), train=tight, first_halving=125_000, tag='n50k-e50-clip1.25').name == \
        'entnet-T4to20-lr0.001-const125k-n50k-e50-clip1.25'
    with pytest.raises(ValueError, match="clip"): WorldRun('entnet', (4, 20), train=tight, tag='n50k-e50')


def test_best_by_validation_breaks_ties_by_validation_loss():
    from mrc_book.experiments.entnet_world import best_by_validation
    rec = lambda run, err, losses, best: {'run': run, 'final': {'best_valid_error': err, 'best_epoch': best},
                                          'history': [{'valid_loss': l} for l in losses]}
    runs = [rec('a', 0.0, [0.001, 0.009], 2), rec('b', 0.0, [0.004, 0.2], 1), rec('c', 0.05, [0.001], 1)]
    # a tie at 0 errors: the lower loss at the chosen epoch (b's 0.004 against a's 0.009; a's lowest loss over its
    # history, its first epoch's and its last epoch's would each pick a)
    assert best_by_validation(runs)['run'] == 'b'
    assert best_by_validation(runs[2:])['run'] == 'c' and best_by_validation([]) is None


def test_random_batches_reach_the_batcher_and_the_record(tmp_path, monkeypatch):
    import mrc_book.experiments.entnet_world as ew
    seen, real = [], ew.bucket_batches
    def spy(lengths, batch_size, **kw):
        seen.append(kw.get('bucket_size_multiplier'))
        return real(lengths, batch_size, **kw)
    monkeypatch.setattr(ew, 'bucket_batches', spy)
    tc = TrainConfig(epochs=1, batch_size=8, lr=0.01, metric='error', metric_mode='min', threads=1, verbose=False)
    rec = train_world_run(WorldRun('entnet', (4, 6), n_train=16, n_valid=4, n_test=4, train=tc, bucket=1), 'quick', results_dir=tmp_path)
    assert seen and seen[0] == 1 and rec['meta']['bucket'] == 1 and rec['run'].endswith('-randbatch-seed0')


def test_cbt_test_names_unseen_in_training_keep_their_own_keys(tmp_path):
    "A vocabulary of the training split alone would map every unseen test name to <unk>: one key for all of them."
    from mrc_book.data.cbt import parse_cbt
    from pathlib import Path
    train = parse_cbt(Path(__file__).parent/'fixtures'/'cbt_tiny.txt')
    rename = lambda w: 'Zq' + w if w[:1].isupper() and w != 'XXXXX' else w   # capitalised words: names training never saw
    test = [replace(e, context=[[rename(w) for w in s] for s in e.context], query=[rename(w) for w in e.query],
                    answer=rename(e.answer), candidates=[rename(c) for c in e.candidates]) for e in train]
    assert len({c for e in test for c in e.candidates if c.startswith('Zq')}) >= 2
    cfg = cbt.CBTRunConfig.quick(); cfg = replace(cfg, train=replace(cfg.train, epochs=1))
    rec = cbt.train_cbt_run('NE', {'train': train, 'valid': train, 'test': test}, cfg, 'quick', 'fixture',
                            results_dir=tmp_path)
    words = {w.lower() for e in train + test for w in [*(x for s in e.context for x in s), *e.query, *e.candidates]}
    assert rec['meta']['vocab'] == len(words) + 2   # every word of every split, plus padding and unknown
