"""The `mrc` command line: exit codes and one-line errors, SQuAD scoring output, `mrc train`."""
import json
from pathlib import Path

import pytest

from mrc_book.cli import dataset_status, main

FIXTURE = Path(__file__).parent / 'fixtures' / 'squad_tiny.json'


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_list_shows_the_bow_experiment(capsys):
    code, out, err = run(capsys, 'train', '--list')
    assert code == 0
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert 'babi-bow' in names


def test_train_unknown_experiment(capsys):
    code, out, err = run(capsys, 'train', 'no-such-experiment')
    assert code == 2 and out == '' and "unknown experiment 'no-such-experiment'" in err
    assert err.count('\n') == 1


def test_evaluate_missing_file_is_one_line_exit_2(capsys, tmp_path):
    missing = tmp_path / 'nope.json'
    code, out, err = run(capsys, 'evaluate', 'squad', str(FIXTURE), str(missing))
    assert code == 2 and out == ''
    assert err.startswith('mrc: error: ') and str(missing) in err and err.count('\n') == 1
    assert 'Traceback' not in err


def test_evaluate_truncated_predictions(capsys, tmp_path):
    bad = tmp_path / 'pred.json'
    bad.write_text('{"tiny-q1": "Denver Bron')
    code, out, err = run(capsys, 'evaluate', 'squad', str(FIXTURE), str(bad))
    assert code == 2 and out == '' and str(bad) in err and 'JSON' in err and err.count('\n') == 1


def test_evaluate_predictions_for_another_dataset(capsys, tmp_path):
    bad = tmp_path / 'pred.json'
    bad.write_text(json.dumps({'some-other-id': 'x'}))
    code, out, err = run(capsys, 'evaluate', 'squad', str(FIXTURE), str(bad))
    assert code == 2 and out == '' and 'not in the dataset' in err


def test_evaluate_prints_the_official_json(capsys, tmp_path):
    data = json.loads(FIXTURE.read_text())
    qas = [q for a in data['data'] for p in a['paragraphs'] for q in p['qas']]
    pred = tmp_path / 'pred.json'
    pred.write_text(json.dumps({q['id']: q['answers'][0]['text'] for q in qas}))   # every answer right
    code, out, err = run(capsys, 'evaluate', 'squad', str(FIXTURE), str(pred))
    assert code == 0
    assert out == json.dumps({'exact_match': 100.0, 'f1': 100.0}) + '\n'   # exactly the official script's line


def test_dataset_status():
    def report(found, ok, sums):
        return {'found': found, 'ok': ok, 'files': [{'checksum_ok': s, 'path': None if s is None and not found else 'x'}
                                                   for s in sums]}
    assert dataset_status(report(True, True, [True, None])) == 'ok'
    assert dataset_status(report(False, False, [None])) == 'missing'
    assert dataset_status(report(False, False, [True, None])) == 'partial'
    assert dataset_status(report(True, False, [False])) == 'corrupt'
    assert dataset_status(report(True, False, [True])) == 'corrupt'   # present, but its counts are wrong


def test_data_check_exit_codes(capsys, monkeypatch, tmp_path):
    from mrc_book.data import sources
    import mrc_book.cli as cli
    monkeypatch.setattr(cli, 'import_data_modules', lambda: {})
    monkeypatch.setattr(sources, 'DATASETS', {})
    good = tmp_path / 'good.txt'; good.write_text('hello\n')
    digest = sources.sha256sum(good)
    sources.register_dataset(sources.Dataset('t-good', files=['good.txt']))
    sources.register_dataset(sources.Dataset('t-missing', files=['absent.txt'], url='https://example.org/absent.txt'))
    monkeypatch.setattr(sources, 'data_roots', lambda: [tmp_path])
    monkeypatch.setattr(sources, 'known_checksums', lambda: {'good.txt': digest})
    code, out, err = run(capsys, 'data', 'check')
    assert code == 0   # a missing dataset is not an error
    rows = {l.split()[0]: l.split()[1] for l in out.splitlines() if l.startswith('t-')}   # the table's rows
    assert rows == {'t-good': 'ok', 't-missing': 'missing'}, out   # each dataset's status column
    code, out, err = run(capsys, 'data', 'check', '--json')
    status = {d['dataset']: d['status'] for d in json.loads(out)['datasets']}
    assert status == {'t-good': 'ok', 't-missing': 'missing'}
    good.write_text('hello, changed\n')   # present and corrupt
    code, out, err = run(capsys, 'data', 'check')
    assert code == 1 and 'corrupt' in err


def test_data_fetch_unknown(capsys):
    code, out, err = run(capsys, 'data', 'fetch', 'no-such-dataset')
    assert code == 2 and 'unknown dataset' in err


def test_train_quick_bow_via_cli(capsys, tmp_path):
    from mrc_book.data.babi import babi_file
    from mrc_book.data.sources import find_file
    if any(find_file(babi_file(1, s, 'en')) is None for s in ('train', 'test')):
        pytest.skip('bAbI en (1k) task 1 is not under any data root: `mrc data fetch babi-en`')
    code, out, err = run(capsys, 'train', 'babi-bow', '--profile', 'quick', '--results-dir', str(tmp_path / 'results'),
                         '--seed', '1')
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary['status'] == 'completed' and summary['run'] == 'babi-bow-quick-task1-seed1'
    rec = json.loads((tmp_path / 'results' / 'babi-bow-quick-task1-seed1.json').read_text())
    assert rec['task'] == 1 and rec['dataset'] == 'babi-en' and rec['seed'] == 1
    # far above chance (1 of 6 places) and far from perfect: a bag of words ignores sentence order
    assert 25 < rec['final']['test_accuracy'] < 90


def test_evaluate_ignore_extra_ids(capsys, tmp_path):
    data = json.loads(FIXTURE.read_text())
    qas = [q for a in data['data'] for p in a['paragraphs'] for q in p['qas']]
    pred = tmp_path / 'pred.json'
    pred.write_text(json.dumps({**{q['id']: q['answers'][0]['text'] for q in qas}, 'another-id': 'x'}))
    code, out, err = run(capsys, 'evaluate', 'squad', str(FIXTURE), str(pred))
    assert code == 2 and 'not in the dataset' in err
    code, out, err = run(capsys, 'evaluate', 'squad', str(FIXTURE), str(pred), '--ignore-extra-ids')
    assert code == 0 and json.loads(out) == {'exact_match': 100.0, 'f1': 100.0}


def test_answer_bad_context_path_and_broken_model(capsys, tmp_path):
    model = tmp_path / 'model'; model.mkdir()
    (model / 'config.json').write_text('{')
    missing = tmp_path / 'passage.txt'
    code, out, err = run(capsys, 'answer', '--model', str(model), '--context', str(missing), '--question', 'Who?')
    assert code == 2 and out == '' and 'no such file' in err and err.count('\n') == 1
    code, out, err = run(capsys, 'answer', '--model', str(model), '--context', 'Denver won.', '--question', 'Who?')
    assert code == 2 and 'config.json' in err and 'not valid JSON' in err and err.count('\n') == 1
    from mrc_book.experiments.rnet_squad import MODEL_FORMAT
    (model / 'config.json').write_text(json.dumps({'format': MODEL_FORMAT}))
    code, out, err = run(capsys, 'answer', '--model', str(model), '--context', 'Denver won.', '--question', 'Who?')
    assert code == 2 and 'weights are incomplete' in err and err.count('\n') == 1


def test_evaluate_missing_files_name_the_file_and_the_fix(capsys, tmp_path):
    missing = tmp_path / 'dev.json'
    code, out, err = run(capsys, 'evaluate', 'squad', str(missing), str(FIXTURE))
    assert code == 2 and out == '' and f'{missing}: no such file' in err and 'dev-v1.1.json' in err and err.count('\n') == 1
    code, out, err = run(capsys, 'evaluate', 'squad', str(FIXTURE), str(missing))
    assert code == 2 and f'{missing}: no such file' in err and '{question id: answer text}' in err


def test_counts_must_be_positive_and_a_passage_must_be_utf8(capsys, tmp_path):
    for argv in (['train', 'reasonet-graphs', '--epochs', '0'], ['data', 'graph-stats', '--size', 'small', '--n', '-5']):
        with pytest.raises(SystemExit) as e: main(argv)
        assert e.value.code == 2 and 'is not a positive number' in capsys.readouterr().err
    model = tmp_path / 'model'; model.mkdir(); (model / 'config.json').write_text('{}')
    passage = tmp_path / 'passage.txt'; passage.write_bytes('The Broncos won in Santa Clara, Califórnia.'.encode('latin-1'))
    code, out, err = run(capsys, 'answer', '--model', str(model), '--context', str(passage), '--question', 'Who won?')
    assert code == 2 and out == '' and 'not UTF-8 text' in err and str(passage) in err and err.count('\n') == 1
