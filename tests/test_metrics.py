"Bad-input and known-value tests of mrc_book.metrics (the notebook nbs/03_metrics.ipynb has the worked examples)."
import json, warnings

import pytest

from mrc_book.data.sources import DataError, find_file
from mrc_book.metrics import evaluate_squad, evaluate_squad_files, pr_auc, roc_auc, squad_em_f1

DATASET = {'version': '1.1', 'data': [{'title': 't', 'paragraphs': [{'context': 'c', 'qas': [
    {'id': 'q1', 'question': '?', 'answers': [{'text': 'the Denver Broncos', 'answer_start': 0}, {'text': 'Denver', 'answer_start': 0}]},
    {'id': 'q2', 'question': '?', 'answers': [{'text': 'Carolina Panthers', 'answer_start': 0}]}]}]}]}


@pytest.fixture
def dataset_path(tmp_path):
    p = tmp_path/'dataset.json'
    p.write_text(json.dumps(DATASET))
    return p


@pytest.mark.parametrize('name,content,fragments', [
    ('empty.json', '', ['empty.json', 'is empty']),
    ('blank.json', '  \n', ['blank.json', 'is empty']),
    ('truncated.json', '{"q1": "Denver", "q2": "Carol', ['truncated.json', 'not valid JSON', 'json.dump']),
    ('text.json', 'Denver Broncos', ['text.json', 'not valid JSON']),
    ('list.json', '["Denver", "Carolina"]', ['list.json', 'must be an object', 'list']),
    ('nested.json', '{"q1": ["Denver"]}', ['nested.json', "'q1'", 'not a string']),
    ('null.json', '{"q1": null}', ['null.json', "'q1'", 'not a string']),
    ('unknown.json', '{"q1": "Denver", "zz9": "x"}', ['unknown.json', '1 of 2', "'zz9'", 'strict=False']),
])
def test_bad_prediction_files(dataset_path, tmp_path, name, content, fragments):
    p = tmp_path/name
    p.write_text(content)
    with pytest.raises(DataError) as e: evaluate_squad_files(dataset_path, p)
    for f in fragments: assert f in str(e.value)


def test_missing_files(dataset_path, tmp_path):
    with pytest.raises(DataError, match='no such predictions file'): evaluate_squad_files(dataset_path, tmp_path/'nope.json')
    (tmp_path/'p.json').write_text('{}')
    with pytest.raises(DataError, match='no such dataset file'): evaluate_squad_files(tmp_path/'nope.json', tmp_path/'p.json')


def test_bad_dataset_file(tmp_path):
    (tmp_path/'p.json').write_text('{"q1": "x"}')
    (tmp_path/'d.json').write_text('{"version": "1.1", "articles": []}')
    with pytest.raises(DataError, match='not a SQuAD dataset'): evaluate_squad_files(tmp_path/'d.json', tmp_path/'p.json')
    (tmp_path/'d.json').write_text('{"version": "1.1", "data": [{"paragraphs": [{"qas": [{"id": "q1"}]}]}]}')
    with pytest.raises(DataError, match='malformed SQuAD dataset'): evaluate_squad_files(tmp_path/'d.json', tmp_path/'p.json')


def test_unanswered_and_non_strict(dataset_path, tmp_path):
    p = tmp_path/'p.json'
    p.write_text('{"q1": "Denver", "zz": "x"}')
    with pytest.warns(UserWarning, match='1 of 2 questions have no prediction'):
        r = evaluate_squad_files(dataset_path, p, strict=False)
    assert r == {'exact_match': 50.0, 'f1': 50.0}


def test_known_values():
    assert squad_em_f1('Broncos of Denver, Colorado', ['the Denver Broncos', 'Denver']) == (0.0, pytest.approx(2/3))
    with warnings.catch_warnings():
        warnings.simplefilter('error')   # every question answered: no warning
        r = evaluate_squad(DATASET, {'q1': 'The Denver Broncos.', 'q2': 'Panthers'})
    assert r['exact_match'] == 50.0 and r['f1'] == pytest.approx(100 * (1 + 2/3) / 2)
    assert roc_auc([0.9, 0.8, 0.7, 0.7, 0.4, 0.2], [1, 0, 1, 0, 1, 0]) == pytest.approx(5.5/9)
    assert pr_auc([0.9, 0.8, 0.7, 0.7, 0.4, 0.2], [1, 0, 1, 0, 1, 0]) == pytest.approx(0.7)


@pytest.mark.parametrize('name,strict,expected', [('r-net-plus-ensemble', True, (82.47, 88.48)),
                                                  ('logistic-regression-baseline', False, (40.14, 50.98))])
def test_published_predictions(name, strict, expected):
    dev, preds = find_file('squad/dev-v1.1.json'), find_file(f'squad/dev-v1.1.predictions.{name}.json')
    if dev is None or preds is None:
        pytest.skip(f'squad/dev-v1.1.json or dev-v1.1.predictions.{name}.json is not under any data root')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        r = evaluate_squad_files(dev, preds, strict=strict)
    assert (round(r['exact_match'], 2), round(r['f1'], 2)) == expected


def test_examples_as_dataset():
    "evaluate_squad also takes SquadExample-like objects (id, answers=[(text, start), ...])."
    from collections import namedtuple
    Ex = namedtuple('Ex', 'id title context question answers')
    examples = [Ex('q1', 't', 'c', '?', [('the Denver Broncos', 0), ('Denver', 0)]), Ex('q2', 't', 'c', '?', [('Carolina Panthers', 0)])]
    r = evaluate_squad(examples, {'q1': 'The Denver Broncos.', 'q2': 'Panthers'})
    assert r == evaluate_squad(DATASET, {'q1': 'The Denver Broncos.', 'q2': 'Panthers'})


def test_dataset_without_gold_answers_names_the_file(tmp_path):
    (tmp_path/'p.json').write_text('{"q1": "x"}')
    for answers, why in (([], 'no gold answers'), ([{'text': None, 'answer_start': 0}], 'not a string')):
        d = {'version': '1.1', 'data': [{'title': 't', 'paragraphs': [{'context': 'c', 'qas': [
            {'id': 'q1', 'question': '?', 'answers': answers}]}]}]}
        (tmp_path/'d.json').write_text(json.dumps(d))
        with pytest.raises(DataError) as e: evaluate_squad_files(tmp_path/'d.json', tmp_path/'p.json')
        assert str(tmp_path/'d.json') in str(e.value) and why in str(e.value) and "'q1'" in str(e.value)
