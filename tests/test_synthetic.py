"""Fast checks of the two synthetic datasets (Graph Reachability, EntNet world model) from the package alone."""
import re
import pytest
from mrc_book.data.graphs import (GRAPH_SIZES, PAPER_TABLE2, generate_graphs, reachability_stats, shortest_path_steps,
                                  save_graphs, load_graphs, parse_graph_line, GraphVocab, sample_graph_arrays,
                                  encode_graph_arrays)
from mrc_book.data.worldmodel import generate_world_stories, WORLD_ANSWERS, render_world_story
from mrc_book.data.sources import DataError


@pytest.mark.parametrize('size', list(GRAPH_SIZES))
def test_graphs_deterministic_and_consistent(size):
    n_nodes, n_edges = GRAPH_SIZES[size]
    a, b = generate_graphs(size, 300, seed=11), generate_graphs(size, 300, seed=11)
    assert [(e.edges, e.query) for e in a] == [(e.edges, e.query) for e in b]
    for e in a:
        assert len(set(e.edges)) == len(e.edges) <= n_edges
        assert e.steps == shortest_path_steps(e.edges, *e.query)
        assert e.label == (e.steps is not None)


@pytest.mark.parametrize('size', list(GRAPH_SIZES))
def test_table2_within_3_points_on_4000_graphs(size):
    stats = reachability_stats(size, 4000, seed=7)
    for got, want in zip(stats.values(), PAPER_TABLE2[size]['train']):
        assert abs(got - want) < 3, stats


def test_hand_made_graph_bfs():
    edges = [(0, 1), (1, 2), (2, 3), (0, 2), (5, 5)]
    assert shortest_path_steps(edges, 0, 3) == 2
    assert shortest_path_steps(edges, 3, 0) is None
    assert shortest_path_steps(edges, 5, 5) == 0


def test_graph_file_round_trip_and_errors(tmp_path):
    exs = generate_graphs('small', 50, seed=3)
    back = load_graphs(save_graphs(tmp_path / 'g.txt', exs))
    assert [(e.edges, e.query, e.label) for e in back] == [(e.edges, e.query, e.label) for e in exs]
    (tmp_path / 'bad.txt').write_text('0 -> 1 #\t1 -> 0\t1\n')   # 1 cannot reach 0
    with pytest.raises(DataError, match='line 1'):
        load_graphs(tmp_path / 'bad.txt')
    assert parse_graph_line('0 -> 1 # 1 -> 2 # \t0 -> 2\t1').steps == 2


def test_encoded_arrays_match_examples():
    v = GraphVocab('large')
    g, m, q, y = encode_graph_arrays(sample_graph_arrays('large', 20, seed=1), v)
    for i, e in enumerate(generate_graphs('large', 20, seed=1)):
        assert v.decode(g[i][m[i]]) == e.tokens and v.decode(q[i]) == e.query_tokens and bool(y[i]) == e.label


def test_world_stories_replay():
    step = {'n': (0, 1), 's': (0, -1), 'e': (1, 0), 'w': (-1, 0)}
    exs = generate_world_stories(200, 25, seed=5)
    assert [(e.story, e.answer) for e in exs] == [(e.story, e.answer) for e in generate_world_stories(200, 25, seed=5)]
    for e in exs:
        pos, head = {}, {}
        for words in e.story:
            line = ' '.join(words)
            m = re.match(r'(agent[12]) (?:is at \((\d+),(\d+)\)|faces-(\w)|moves-(\d))$', line)
            a, x, y, d, k = m.groups()
            if x: pos[a] = (int(x), int(y))
            elif d: head[a] = d
            else:
                dx, dy = step[head[a]]
                pos[a] = (pos[a][0] + int(k) * dx, pos[a][1] + int(k) * dy)
                assert 1 <= pos[a][0] <= 10 and 1 <= pos[a][1] <= 10, line
        assert e.answer == '({},{})'.format(*pos[e.agent]) and e.answer in WORLD_ANSWERS
        assert len(e.story) == 25
    assert render_world_story(exs[:2]).splitlines()[-2:] == [f'a1: {exs[0].answer}', f'a2: {exs[1].answer}']
