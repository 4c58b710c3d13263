"""R-NET on SQuAD: the prepared bundle, batches, full-passage dev scoring, save -> reload -> identical predictions, `mrc answer`."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mrc_book.cli import main
from mrc_book.data.sources import DataError
from mrc_book.data.squad import read_squad_json, squad_examples
from mrc_book.experiments.rnet_squad import (PrepareSpec, RNetSquadConfig, best_dev_so_far, bundle_batch, bundle_vocabs,
                                             load_prepared, load_rnet, predict_split, prepare_squad, save_rnet, score_split, split_articles)
from mrc_book.metrics import evaluate_squad
from mrc_book.models.rnet import RNet, RNetConfig
from mrc_book.text import tokenize
from mrc_book.training import EXPERIMENTS

FIXTURE = Path(__file__).parent / 'fixtures' / 'squad_tiny.json'


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    exs = squad_examples(read_squad_json(FIXTURE))
    out = tmp_path_factory.mktemp('prep')
    prepare_squad(PrepareSpec('tiny', train_max_passage=11, char_min_freq=1), out, train_examples=exs,
                  dev_examples=exs, verbose=False)
    return exs, load_prepared(out / 'tiny')


@pytest.fixture(scope='module')
def model(tiny):
    _, b = tiny
    wv, cv = bundle_vocabs(b)
    torch.manual_seed(0)
    m = RNet(RNetConfig.quick(), b['word_vectors'], wv, cv)
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    for _ in range(3):
        opt.zero_grad(); m.loss(bundle_batch(b, 'train', [0, 1])).backward(); opt.step()
    return m.eval()


def test_training_spans_give_back_the_answers_and_cut_answers_are_counted(tiny):
    exs, b = tiny
    tr, itos = b['train'], b['surface_itos']
    got = []
    for i in range(len(tr['start'])):
        p = int(tr['paragraph'][i])
        toks = tr['context_flat'][tr['context_offsets'][p]:tr['context_offsets'][p + 1]]
        got.append(' '.join(itos[t] for t in toks[tr['start'][i]:tr['end'][i] + 1]))
    assert got == ['Denver Broncos', "Levi 's Stadium"]
    assert b['report']['answers_lost_to_cut'] == 1          # '24–10' is tokens 9-11: past an 11-token cut
    assert int((tr['context_offsets'][1:] - tr['context_offsets'][:-1]).max()) <= 11


def test_dev_passages_are_never_cut(tiny):
    exs, b = tiny
    lengths = (b['dev']['context_offsets'][1:] - b['dev']['context_offsets'][:-1]).tolist()
    assert lengths == [len(tokenize(exs[0].context)), len(tokenize(exs[2].context))]
    assert max(lengths) > 11 and b['dev']['ids'] == ['tiny-q1', 'tiny-q2', 'tiny-q3']


def test_batch_masks_and_padding(tiny):
    _, b = tiny
    bt = bundle_batch(b, 'dev', [0, 2])
    assert bt['context_mask'].sum(1).tolist() == [18, 14]
    assert bt['context_words'][1, 14:].eq(0).all() and bt['context_chars'][1, 14:].eq(0).all()
    assert bt['context_chars'].shape[:2] == bt['context_words'].shape


def test_every_dev_question_is_predicted_and_scored_officially(tiny, model):
    _, b = tiny
    out = predict_split(model, b, 'dev', batch_size=2)
    assert set(out['predictions']) == set(b['dev']['ids'])
    for qid, text in out['predictions'].items():   # the answer is a span of its passage, at most 16 tokens
        assert text and any(text in c for c in b['dev']['contexts'])
        i, j = out['spans'][qid]
        assert 0 <= j - i <= 15
    gold = {q: a for q, a in zip(b['dev']['ids'], b['dev']['answers'])}
    assert gold['tiny-q3'] == ["Levi's Stadium", 'Santa Clara, California']   # every gold answer reaches the bundle
    for k in (0, -1):   # the first or the last gold answer of each question: the official score takes the best
        assert evaluate_squad(split_articles(b), {q: a[k] for q, a in gold.items()}) == {'exact_match': 100.0, 'f1': 100.0}


class PointAt(torch.nn.Module):
    "A stub reader whose start scores peak at token 1 and end scores at token 3 of every passage (padding lowest)."
    config = SimpleNamespace(max_span=15)

    def forward(self, batch):
        m = batch['context_mask']; s = torch.full(m.shape, -1e4); e = s.clone()
        s[:, 1] = 0.; e[:, 3] = 0.
        low = torch.finfo(s.dtype).min
        return s.masked_fill(~m, low), e.masked_fill(~m, low)


def test_predicted_spans_become_the_text_of_their_own_passage(tiny):
    "Tokens 1..3 of each question's own passage, cut from its characters: a wrong passage offset gives wrong text."
    exs, b = tiny
    out = predict_split(PointAt(), b, 'dev', batch_size=2)
    assert set(out['spans'].values()) == {(1, 3)}
    want = {}
    for ex in exs:
        t = tokenize(ex.context); want[ex.id] = ex.context[t[1].start:t[3].end]
    assert want == {'tiny-q1': '2016 the Denver', 'tiny-q2': '2016 the Denver', 'tiny-q3': 'game was played'}
    assert out['predictions'] == want


def test_best_dev_so_far_only_for_an_interrupted_run_scored_on_all_of_dev():
    hist = [{'epoch': e, 'valid_em': em, 'valid_f1': f1} for e, em, f1 in [(1, 30, 40), (2, 36, 45), (3, 35, 43)]]
    rec = lambda status, valid_q: {'status': status, 'history': hist, 'meta': {'valid_questions': valid_q, 'test_questions': 10_570}}
    assert best_dev_so_far(rec('interrupted', 10_570))['epoch'] == 2
    assert best_dev_so_far(rec('completed', 10_570)) is None      # a completed run has its own test numbers
    assert best_dev_so_far(rec('interrupted', 500)) is None       # a dev subset is not the official score
    assert best_dev_so_far({**rec('interrupted', 10_570), 'history': []}) is None


def test_save_reload_rescore_identical(tiny, model, tmp_path):
    _, b = tiny
    m1, p1 = score_split(model, b, 'dev')
    re = load_rnet(save_rnet(model, tmp_path / 'model'))
    m2, p2 = score_split(re, b, 'dev')
    assert p1 == p2 and m1 == m2
    bt = bundle_batch(b, 'dev', [0, 1, 2])
    with torch.no_grad():
        assert torch.equal(model(bt)[0], re(bt)[0]) and torch.equal(model(bt)[1], re(bt)[1])


def test_mrc_answer_prints_the_models_span(tiny, model, tmp_path, capsys):
    exs, _ = tiny
    d = save_rnet(model, tmp_path / 'm')
    ctx = tmp_path / 'passage.txt'; ctx.write_text(exs[0].context)
    assert main(['answer', '--context', str(ctx), '--question', exs[0].question, '--model', str(d), '--json']) == 0
    got = json.loads(capsys.readouterr().out)
    text, start, end, score = model.answer(exs[0].context, exs[0].question)
    assert got == {'answer': text, 'start': start, 'end': end, 'score': score}
    assert exs[0].context[start:end] == text


def test_mrc_answer_missing_model_is_one_line_error(tmp_path, capsys):
    assert main(['answer', '--context', 'Some text.', '--question', 'What?', '--model', str(tmp_path / 'none')]) == 2
    out, err = capsys.readouterr()
    assert out == '' and err.startswith('mrc: error: ') and err.count('\n') == 1


def test_bad_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match='no prepared SQuAD bundle'): load_prepared(tmp_path)
    torch.save({'format': 'something else'}, tmp_path / 'bundle.pt')
    with pytest.raises(DataError, match='not an rnet-squad bundle'): load_prepared(tmp_path)


def test_registered_with_the_reports_defaults():
    assert 'rnet-squad' in EXPERIMENTS
    full = RNetSquadConfig.full()
    m, t = full.model, full.train
    assert (m.hidden_size, m.dropout, m.max_span, m.encoder_layers) == (75, 0.2, 15, 3)
    assert (t.optimizer, t.lr, t.rho, t.eps, t.batch_size) == ('adadelta', 1.0, 0.95, 1e-6, 64)
    assert full.prepare.train_max_passage == 400 and full.prepare.dev_questions is None


def test_rescore_without_checkpoint_is_a_clear_error(tmp_path):
    from mrc_book.experiments.rnet_squad import rescore_checkpoint
    results = tmp_path / 'results'; results.mkdir()
    (results / 'rnet-squad-full-seed0.json').write_text(json.dumps({'experiment': 'rnet-squad', 'run': 'rnet-squad-full-seed0'}))
    with pytest.raises(DataError, match='no checkpoint of rnet-squad-full-seed0 on this machine'):
        rescore_checkpoint('rnet-squad-full-seed0', results_dir=results)
    (results / 'other.json').write_text(json.dumps({'experiment': 'entnet-babi'}))
    with pytest.raises(DataError, match='not a record of an rnet-squad run'):
        rescore_checkpoint('other', results_dir=results)
    with pytest.raises(DataError, match='no run record'):
        rescore_checkpoint('no-such-run', results_dir=results)


def test_a_dev_question_without_tokens_is_refused_not_dropped(tmp_path):
    "Dropping it would shrink the denominator: the bundle would score 100 where the official script scores 66.67."
    data = json.loads(FIXTURE.read_text())
    qa = [q for art in data['data'] for par in art['paragraphs'] for q in par['qas'] if q['id'] == 'tiny-q3'][0]
    qa['question'] = '\u200b\u200b'
    bad = tmp_path / 'dev.json'; bad.write_text(json.dumps(data))
    dev = squad_examples(read_squad_json(bad))
    assert 'tiny-q3' in {ex.id for ex in dev}        # the reader keeps it, so the official script would count it
    with pytest.raises(DataError, match="tiny-q3.*no tokens"):
        prepare_squad(PrepareSpec('bad', train_max_passage=11, char_min_freq=1), tmp_path / 'prep',
                      train_examples=squad_examples(read_squad_json(FIXTURE)), dev_examples=dev, verbose=False)


def test_a_bundle_with_other_vocabularies_is_refused(tiny, tmp_path):
    "A run's weights index its bundle's vocabularies: re-scoring or resuming it on a bundle with others is an error."
    from mrc_book.experiments.rnet_squad import check_vocab_fingerprint, rescore_checkpoint, vocab_fingerprint
    exs, b = tiny
    fp, chars = vocab_fingerprint(b), b['char_itos']
    swapped = {**b, 'char_itos': chars[:2] + chars[3:4] + chars[2:3] + chars[4:]}   # same size, two characters swapped
    assert len(chars) > 4 and vocab_fingerprint(swapped) != fp
    check_vocab_fingerprint(b, {'meta': {'vocab_fingerprint': fp}}, 'run.json')      # the same bundle passes
    check_vocab_fingerprint(swapped, {'meta': {}}, 'run.json')                       # records without one are not checked
    with pytest.raises(DataError, match="run.json: this run was trained on a bundle whose word or character vocabulary differs"):
        check_vocab_fingerprint(swapped, {'meta': {'vocab_fingerprint': fp}}, 'run.json')
    # through rescore_checkpoint: a record whose fingerprint is not the bundle's
    spec = PrepareSpec('tiny', train_max_passage=11, char_min_freq=1)
    prepare_squad(spec, tmp_path / 'prepared', train_examples=exs, dev_examples=exs, verbose=False)
    results, ck = tmp_path / 'results', tmp_path / 'checkpoints' / 'run'
    results.mkdir(); ck.mkdir(parents=True); (ck / 'checkpoint.json').write_text('{}')
    (results / 'run.json').write_text(json.dumps({'experiment': 'rnet-squad', 'run': 'run',
                                                  'meta': {'prepare': b['spec'], 'vocab_fingerprint': vocab_fingerprint(swapped)}}))
    with pytest.raises(DataError, match='vocabulary differs'):
        rescore_checkpoint('run', results_dir=results, checkpoint_dir=ck, prepared_dir=tmp_path / 'prepared')
