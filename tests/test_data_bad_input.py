"""Bad input to the data loaders: every error is a DataError whose message names the file (and line) and the fix."""
import json
from pathlib import Path

import pytest

from mrc_book.data.sources import DataError, find_file
from mrc_book.data.squad import (read_squad_json, load_squad, squad_examples, fit_passage, answer_token_span,
                                 SQUAD_DEV)
from mrc_book.data.babi import parse_babi, load_babi, babi_file
from mrc_book.data.cbt import parse_cbt, load_cbt
from mrc_book.data.cloze import parse_cloze_question, load_cloze

FIXTURES = Path(__file__).parent/'fixtures'
SQUAD_TINY = FIXTURES/'squad_tiny.json'


def _raises(fn, *needles) -> str:
    "Call `fn`, expect a DataError whose message contains every needle; return the message."
    with pytest.raises(DataError) as info: fn()
    msg = str(info.value)
    for needle in needles: assert str(needle) in msg, f'{needle!r} not in message: {msg}'
    return msg


# ---------------------------------------------------------------- SQuAD
def _tiny():
    return json.loads(SQUAD_TINY.read_text(encoding='utf-8'))

def _write(tmp_path, obj_or_text, name='dev-v1.1.json') -> Path:
    p = tmp_path/name
    p.write_text(obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text), encoding='utf-8')
    return p

def test_squad_fixture_is_valid():
    exs = squad_examples(read_squad_json(SQUAD_TINY))
    assert [len(e.answers) for e in exs] == [2, 1, 2]
    for e in exs:
        for text, start in e.answers: assert e.context[start:start + len(text)] == text

def test_squad_truncated_says_where_it_stops(tmp_path):
    text = SQUAD_TINY.read_text(encoding='utf-8')
    for cut in (len(text) // 3, len(text) // 2, len(text) - 5):   # inside a string, between values, near the end
        p = _write(tmp_path, text[:cut])
        msg = _raises(lambda: read_squad_json(p), p, 'truncated', 'line 1 column', 'mrc data fetch squad-dev')
        assert f'{len(text[:cut].encode()):,} bytes' in msg

def test_squad_not_json(tmp_path):
    p = _write(tmp_path, '<!DOCTYPE html><html><body>Not Found</body></html>')
    _raises(lambda: read_squad_json(p), p, 'not JSON', 'mrc data fetch squad-dev')
    p = tmp_path/'train-v1.1.json'; p.write_bytes(b'\x1f\x8b\x08\x00\xff\xfe')   # gzip bytes under a .json name
    _raises(lambda: read_squad_json(p), p, 'not JSON', 'mrc data fetch squad-train')

def test_squad_missing_data_key(tmp_path):
    p = _write(tmp_path, {'version': '1.1', 'articles': []})
    _raises(lambda: read_squad_json(p), p, "no 'data' list", 'mrc data fetch')

def test_squad_empty_answer_text(tmp_path):
    obj = _tiny(); obj['data'][0]['paragraphs'][0]['qas'][1]['answers'][0]['text'] = ' '
    p = _write(tmp_path, obj)
    _raises(lambda: read_squad_json(p), p, 'empty answer text', "'tiny-q2'", 'paragraph 0', 'mrc data fetch')

def test_squad_answer_start_does_not_match(tmp_path):
    obj = _tiny(); obj['data'][0]['paragraphs'][1]['qas'][0]['answers'][1]['answer_start'] += 1
    p = _write(tmp_path, obj)
    _raises(lambda: read_squad_json(p), p, 'does not match the context', "'tiny-q3'", 'answer 1', 'mrc data fetch')

def test_squad_null_id_only_when_allowed(tmp_path):
    obj = _tiny(); obj['data'][0]['paragraphs'][0]['qas'][0]['id'] = None
    p = _write(tmp_path, obj)
    _raises(lambda: read_squad_json(p), p, 'null id', 'reconstruction')
    assert squad_examples(read_squad_json(p, allow_null_ids=True))[0].id is None

def test_squad_null_start_is_skipped_and_reported(tmp_path):
    obj = _tiny(); obj['data'][0]['paragraphs'][0]['qas'][1]['answers'][0]['answer_start'] = None
    p = _write(tmp_path, obj)
    _raises(lambda: read_squad_json(p), p, 'null answer_start')
    exs = squad_examples(read_squad_json(p, allow_null_starts=True))
    assert len(exs) == 2 and exs.report['skipped_questions'] == 1 and exs.skipped[0]['id'] == 'tiny-q2'

def test_squad_wrong_checksum_in_a_temp_data_root(tmp_path, monkeypatch):
    (tmp_path/'squad').mkdir()
    bad = tmp_path/SQUAD_DEV
    bad.write_text(SQUAD_TINY.read_text(encoding='utf-8'), encoding='utf-8')   # valid SQuAD, wrong bytes
    monkeypatch.setenv('MRC_DATA', str(tmp_path))
    _raises(lambda: load_squad('dev', download=False), bad, 'sha256', 'mrc data fetch', '$MRC_DATA')

def test_squad_over_long_passage(tmp_path):
    ex = squad_examples(read_squad_json(SQUAD_TINY), source=str(SQUAD_TINY))[0]
    tokens = ex.context.split()
    where = f'{ex.source}: question {ex.id}'
    _raises(lambda: fit_passage(tokens, 5, where=where), SQUAD_TINY, 'tiny-q1', f'{len(tokens)} tokens',
            'max_len=5', 'truncate=True')
    kept, spans, cut = fit_passage(tokens, 5, [(3, 4), (9, 9)], truncate=True)
    assert len(kept) == 5 and spans == [(3, 4), None] and cut.answers_lost == 1 and cut.dropped_tokens == len(tokens) - 5

def test_answer_span_never_silently_wrong():
    from mrc_book.text import tokenize
    s = 'In 2016 the Denver Broncos won.'
    toks = tokenize(s)
    assert answer_token_span(toks, 12, 26) == (3, 4)
    assert answer_token_span(toks, 13, 26) is None                      # starts inside 'Denver'
    assert answer_token_span(toks, 13, 26, widen=True) == (3, 4)


# ---------------------------------------------------------------- bAbI
GOOD_BABI = (FIXTURES/'babi_tiny.txt').read_text().splitlines(keepends=True)

@pytest.mark.parametrize('line_no, bad_line, why', [
    (2, 'John went to the hallway.\n', 'no line ID'),
    (2, '3 John went to the hallway.\n', 'line ID 3 follows 1'),
    (3, '3 Where is Mary?\tbathroom\n', '2 tab-separated fields'),
    (3, '3 Where is Mary?\t\t1\n', 'empty question or answer'),
    (3, '3 Where is Mary?\tbathroom\t3\n', 'not earlier statement IDs'),   # points at itself
    (3, '3 Where is Mary?\tbathroom\tone\n', 'not earlier statement IDs'),
])
def test_babi_malformed_line(tmp_path, line_no, bad_line, why):
    lines = GOOD_BABI.copy(); lines[line_no - 1] = bad_line
    p = tmp_path/'qa1_single-supporting-fact_train.txt'; p.write_text(''.join(lines))
    _raises(lambda: parse_babi(p), f'{p}:{line_no}:', why, 'expected', repr(bad_line.rstrip('\n')), 'mrc data fetch')

def test_babi_wrong_checksum_in_a_temp_data_root(tmp_path, monkeypatch):
    rel = babi_file(1, 'test', 'en')
    (tmp_path/rel).parent.mkdir(parents=True)
    (tmp_path/rel).write_text(''.join(GOOD_BABI))
    monkeypatch.setenv('MRC_DATA', str(tmp_path))
    _raises(lambda: load_babi(1, 'test', 'en', download=False), tmp_path/rel, 'sha256', 'mrc data fetch')

def test_babi_missing_10k_task3_explains(tmp_path):
    if find_file(babi_file(3, 'train', 'en-10k')) is not None: pytest.skip('en-10k qa3 train is present here')
    msg = _raises(lambda: load_babi(3, 'train', 'en-10k', download=False),
                  'qa3_three-supporting-facts_train.txt', "setting='en'", 'mrc data fetch babi-en-10k', 'allow_partial=True')
    assert 'is missing' in msg


# ---------------------------------------------------------------- CBT and CNN cloze
def test_cbt_malformed_and_missing(tmp_path, monkeypatch):
    lines = (FIXTURES/'cbt_tiny.txt').read_text().splitlines(keepends=True)
    assert len(parse_cbt(FIXTURES/'cbt_tiny.txt')) == 2
    p = tmp_path/'cbtest_NE_valid_2000ex.txt'
    p.write_text(''.join(lines[:20] + ['21 the XXXXX .\tElf\t\tFairy|king\n']))
    _raises(lambda: parse_cbt(p), f'{p}:21:', 'not among the candidates', 'mrc data fetch cbt')
    p.write_text(''.join(lines[:5] + lines[6:]))
    _raises(lambda: parse_cbt(p), f'{p}:6:', "line number '7' where 6 was due")
    p.write_text(''.join(lines[:21] + lines[22:]))                       # the blank line between two examples dropped
    _raises(lambda: parse_cbt(p), f'{p}:22:', 'no blank line after the example')
    if find_file('cbt/CBTest/data/cbtest_NE_valid_2000ex.txt') is None:
        _raises(lambda: load_cbt('NE', 'valid', download=False), 'was not found', 'CBTest.tgz')
    # a copy cut after a whole example parses cleanly: the official count refuses it (and its git blob id differs
    # from the data README's, which comes from one public copy, so that is a warning, not an error)
    rel = 'cbt/CBTest/data/cbtest_NE_valid_2000ex.txt'; root = tmp_path/'root'
    (root/rel).parent.mkdir(parents=True); (root/rel).write_text(''.join(lines))
    monkeypatch.setenv('MRC_DATA', str(root))
    with pytest.warns(UserWarning, match='not cross-checked'):
        _raises(lambda: load_cbt('NE', 'valid', download=False), root/rel, '2 questions where the official file has 2,000',
                'mrc data fetch cbt')

def test_cloze_malformed_and_missing(tmp_path):
    src = sorted((FIXTURES/'cnn'/'questions'/'validation').glob('*.question'))[0]
    good = src.read_text().split('\n')
    p = tmp_path/'x.question'
    p.write_text('\n'.join(good[:6] + ['@entity99'] + good[7:]))
    _raises(lambda: parse_cloze_question(p), f'{p}:7:', 'does not occur in the story', 'kcho/DMQA')
    p.write_text('\n'.join(good[:3]))
    _raises(lambda: parse_cloze_question(p), str(p), 'truncated')
    _raises(lambda: load_cloze('cnn', 'test', roots=[tmp_path]), 'cnn/questions/test/', 'kcho/DMQA')


# ---------------------------------------------------------------- wrong types and shapes (each a DataError, no deep stack trace)
@pytest.mark.parametrize('edit, why', [
    (lambda o: o['data'].append('x'), 'an article must be an object'),
    (lambda o: o['data'][0].pop('paragraphs'), "no 'paragraphs' list"),
    (lambda o: o['data'][0]['paragraphs'][0].update(qas={'id': 'x'}), "no 'qas' list"),
    (lambda o: o['data'][0]['paragraphs'][0]['qas'][0]['answers'][0].update(answer_start='0'), "answer_start '0' is not a character offset"),
    (lambda o: o['data'][0]['paragraphs'][0]['qas'][0]['answers'][0].update(answer_start=1.0), 'answer_start 1.0 is not a character offset'),
    (lambda o: o['data'][0]['paragraphs'][0]['qas'][0]['answers'][0].update(answer_start=-6), 'answer_start -6 is not a character offset'),
    (lambda o: o['data'][0]['paragraphs'][0]['qas'][1].update(id=o['data'][0]['paragraphs'][0]['qas'][0]['id']), 'the same id as article 0 paragraph 0 question 0'),
])
def test_squad_wrong_types(tmp_path, edit, why):
    obj = _tiny(); edit(obj)
    p = _write(tmp_path, obj)
    _raises(lambda: read_squad_json(p), p, why, 'mrc data fetch')

def test_babi_question_without_tabs_and_no_questions(tmp_path):
    lines = GOOD_BABI.copy(); lines[2] = '3 Where is Mary? bathroom 1\n'
    p = tmp_path/'qa1_single-supporting-fact_train.txt'; p.write_text(''.join(lines))
    _raises(lambda: parse_babi(p), f'{p}:3:', 'a question without its tab-separated answer')
    p.write_text('1 Mary moved to the bathroom.\n2 John went to the hallway.\n')
    _raises(lambda: parse_babi(p), p, 'no questions')

def test_cbt_candidates(tmp_path):
    lines = (FIXTURES/'cbt_tiny.txt').read_text().splitlines(keepends=True)
    num, text = lines[20].split(' ', 1)
    query, answer, empty, cands = text.rstrip('\n').split('\t')
    p = tmp_path/'cbtest_NE_valid_2000ex.txt'
    for cs, why in ((cands.split('|')[:1] if answer == cands.split('|')[0] else [answer], '1 candidates instead of 10'),
                    ([answer] + cands.split('|')[1:-1] + [''], 'some empty')):
        p.write_text(''.join(lines[:20] + [f"{num} {query}\t{answer}\t\t{'|'.join(cs)}\n"]))
        _raises(lambda: parse_cbt(p), f'{p}:21:', why)
    p.write_text(''.join(lines[:20] + [f"{num} {query}\t \t\t{cands}\n"]))
    _raises(lambda: parse_cbt(p), f'{p}:21:', 'an empty answer')

def test_fetch_uses_an_archive_put_there_by_hand(tmp_path):
    import tarfile
    from mrc_book.data.sources import fetch, check, DATASETS
    from mrc_book.data.cbt import cbt_file, CBT_WORD_TYPES, _CBT_SPLITS
    ds = DATASETS['cbt']
    src = tmp_path/'src'/'CBTest'/'data'; src.mkdir(parents=True)
    for t in CBT_WORD_TYPES:
        for s in _CBT_SPLITS: (src/Path(cbt_file(t, s)).name).write_text((FIXTURES/'cbt_tiny.txt').read_text())
    root = tmp_path/'root'; (root/'downloads').mkdir(parents=True)
    archive = root/'downloads'/ds.url.rsplit('/', 1)[-1]
    with tarfile.open(archive, 'w:gz') as t: t.add(tmp_path/'src'/'CBTest', arcname='CBTest')
    with pytest.warns(UserWarning, match='not cross-checked'):   # the fixture is not the README's CBT files
        paths = fetch('cbt', roots=[root])       # no network needed: the archive is there
    assert len(paths) == len(ds.files) and all(Path(q).is_file() and str(q).startswith(str(root)) for q in paths)
    assert len(parse_cbt(paths[0])) == 2
    r = check('cbt', roots=[root])                  # counted where it was looked for, not under the default roots
    assert r['found'] and r['counts'] == {f'{t}_{s}': 2 for t in CBT_WORD_TYPES for s in _CBT_SPLITS}, r['counts']
    root2 = tmp_path/'root2'; (root2/'downloads').mkdir(parents=True)
    (root2/'downloads'/archive.name).write_bytes(b'not an archive')
    _raises(lambda: fetch('cbt', roots=[root2]), archive.name, 'not a readable archive', ds.url)

def test_a_cloze_corpus_is_found_and_counted_under_the_roots_given(tmp_path):
    import shutil
    from mrc_book.data.sources import fetch, check
    root, src = tmp_path/'root', sorted((FIXTURES/'cnn'/'questions'/'validation').glob('*.question'))[0]
    for split, n in (('training', 3), ('validation', 2), ('test', 1)):
        d = root/'cnn'/'questions'/split; d.mkdir(parents=True)
        for i in range(n): shutil.copy(src, d/f'{i}.question')
    r = check('cnn-cloze', roots=[root])
    assert r['found'] and r['counts'] == {'training': 3, 'validation': 2, 'test': 1}, r
    assert fetch('cnn-cloze', roots=[root]) == []   # nothing missing, so nothing to download
    (root/'cnn'/'questions'/'test'/'0.question').unlink()
    assert check('cnn-cloze', roots=[root])['problems'] == ['missing: cnn/questions/test/*.question']
    _raises(lambda: fetch('cnn-cloze', roots=[root]), 'cnn/questions/test/*.question', 'no automatic download')

def test_glove_is_counted_under_the_roots_given(tmp_path):
    import warnings
    from mrc_book.data.sources import check
    from mrc_book.embeddings import GLOVE_6B_DIMS
    for d in GLOVE_6B_DIMS:
        f = tmp_path/'glove'/f'glove.6B.{d}d.txt'; f.parent.mkdir(exist_ok=True)
        f.write_text(''.join(f"w{i} {' '.join(['0.1'] * d)}\n" for i in range(3)))
    with warnings.catch_warnings(): warnings.simplefilter('ignore'); r = check('glove-6b', roots=[tmp_path])
    assert r['found'] and r['counts'] == {f'{d}d words': 3 for d in GLOVE_6B_DIMS}, r
    assert 'counted 3, expected 400000' in r['problems'][0]

def test_every_counter_takes_the_roots():
    "check(name, roots) calls ds.counts(roots): a counter without that argument would stop `mrc data check`."
    import inspect
    import mrc_book.data.squad, mrc_book.data.babi, mrc_book.data.cbt, mrc_book.data.cloze, mrc_book.embeddings  # register them
    from mrc_book.data.sources import DATASETS
    assert {'squad-dev', 'babi-en-10k', 'cbt', 'cnn-cloze', 'glove-6b'} <= set(DATASETS)
    for name, ds in DATASETS.items():
        if ds.counts is not None: inspect.signature(ds.counts).bind(None)   # raises TypeError if it takes no roots


# ---------------------------------------------------------------- found by trying bad input by hand
def test_truncated_files_without_a_final_newline(tmp_path):
    "A copy cut inside its last line parses as shorter but valid data unless the missing final newline is caught."
    p = tmp_path/'qa1_single-supporting-fact_train.txt'; p.write_text(''.join(GOOD_BABI)[:-5])
    _raises(lambda: parse_babi(p), f'{p}:', 'ends without a newline', 'truncated', 'mrc data fetch')
    cbt = (FIXTURES/'cbt_tiny.txt').read_text()
    c = tmp_path/'cbtest_NE_valid_2000ex.txt'; c.write_text(cbt.rstrip('\n')[:-2])   # into the last candidate
    _raises(lambda: parse_cbt(c), f'{c}:', 'ends without a newline', 'mrc data fetch cbt')

def test_squad_evaluation_refuses_empty_gold_answers_and_repeated_ids(tmp_path):
    from mrc_book.metrics import evaluate_squad_files
    preds = _write(tmp_path, {}, 'pred.json')
    d = _tiny(); d['data'][0]['paragraphs'][0]['qas'][0]['answers'] = [{'text': ' ', 'answer_start': 0}]
    _raises(lambda: evaluate_squad_files(_write(tmp_path, d), preds), 'an empty gold answer text')
    d = _tiny(); qas = [qa for p in d['data'][0]['paragraphs'] for qa in p['qas']]
    qas[1]['id'] = qas[0]['id']
    _raises(lambda: evaluate_squad_files(_write(tmp_path, d), preds), f"question id {qas[0]['id']!r} appears twice")

def test_files_that_are_not_utf8_or_roots_that_are_not_folders(tmp_path, monkeypatch):
    from mrc_book.metrics import evaluate_squad_files
    from mrc_book.data.sources import check, data_roots
    pred = tmp_path/'pred.json'; pred.write_text('{"q": "Denver"}', encoding='utf-16')   # what a Windows shell writes
    _raises(lambda: evaluate_squad_files(SQUAD_TINY, pred), f'{pred}: the predictions file is not UTF-8 text', 'json.dump')
    not_a_dir = tmp_path/'notadir'; not_a_dir.write_text('hi')
    monkeypatch.setenv('MRC_DATA', str(not_a_dir))
    _raises(data_roots, f'$MRC_DATA={not_a_dir} is a file, not a folder')
    # a file with no known fingerprint that is gzip, not text: the missing 10k task-3 training file, added by hand,
    # with its git blob id hidden (else the fingerprint refuses it before it is counted)
    root = tmp_path/'root'; rel = babi_file(3, 'train', 'en-10k')
    import mrc_book.data.sources as sources
    monkeypatch.delitem(sources.KNOWN_GIT_BLOBS, rel)
    (root/rel).parent.mkdir(parents=True); (root/rel).write_bytes(b'\x1f\x8b\x08\x00\xff\xfe')
    monkeypatch.setenv('MRC_DATA', str(root))
    import mrc_book.data.babi   # registers the bAbI datasets
    if any(find_file(f) is None for f in sources.DATASETS['babi-en-10k'].files if f != rel):
        pytest.skip('the rest of bAbI en-10k is not under any data root: `mrc data fetch babi-en-10k`')
    r = check('babi-en-10k')
    assert not r['ok'] and any('mrc data fetch babi-en-10k' in p and str(root/rel) in p for p in r['problems']), r['problems']

def test_babi_copy_cut_at_a_line_end_is_counted_against_the_official_file(tmp_path, monkeypatch):
    """A copy cut at a story boundary is refused by its question count even where no checksum is known (here the
    checksums are hidden: en-valid-10k's task-3 training file, not staged, has a known sha256 that would refuse it first)."""
    import mrc_book.data.sources as sources
    monkeypatch.setattr(sources, 'known_checksums', lambda: {})
    src = find_file(babi_file(3, 'train', 'en'))
    if src is None: pytest.skip('bAbI en is not staged here')
    rel = babi_file(3, 'train', 'en-valid-10k')
    text = src.read_text(encoding='utf-8'); cut = text.index('\n1 ', len(text) // 3) + 1   # whole stories only
    (tmp_path/rel).parent.mkdir(parents=True); (tmp_path/rel).write_text(text[:cut], encoding='utf-8')
    monkeypatch.setenv('MRC_DATA', str(tmp_path))
    _raises(lambda: load_babi(3, 'train', 'en-valid-10k', download=False), tmp_path/rel, 'where the official', '9,000',
            'mrc data fetch babi-en-valid-10k')
