#!/usr/bin/env python
"""Training throughput of ReasoNet on Graph Reachability: examples per second for forward + backward + Adam.

The paper's small-graph model (100-d embeddings, BiLSTM 128 for the query and another for the graph, T_max 15,
contrastive-reward objective) at batch 64. Graphs come from `mrc_book.data.graphs.generate_graphs` when that module
exists, else random symbol sequences of the same shape (56-64 tokens, query of 3); the output says which.

    python bench/reasonet.py                         # CPU, small graphs, paper sizes
    python bench/reasonet.py --threads 1             # one intra-op thread (faster on a loaded machine)
    python bench/reasonet.py --size large            # BiLSTM 256, T_max 25
    python bench/reasonet.py --device cuda --steps 50
    python bench/reasonet.py --threads 2 --bf16      # bfloat16 autocast (oneDNN bf16 kernels on AVX-512/AMX CPUs)
    python bench/reasonet.py --threads 1,2 --both --steps 40 --json results/bench-reasonet-cpu.json   # the book's table

Arithmetic per training batch (graph-small, B = 64, graphs padded to 64 tokens), counting forward + backward as 3x
the forward multiply-adds: the graph BiLSTM 2 dirs x 4096 tokens x 4*128*(100+128) MAC = 0.96 GMAC forward, 5.7 GFLOP
in all; the query BiLSTM (2 dirs x 192 tokens) 0.27 GFLOP; the key projection W1 (4096 x 256 x 256) 1.6 GFLOP; the
GRU controller, a GRUCell(256, 256) (14 steps x 64 x 3*256*(256+256)), 2.1 GFLOP; the state projection W2 s_t 0.35 GFLOP;
the attention reads ~0.2 GFLOP. About 10.3 GFLOP per batch (`torch.utils.flop_counter` on one batch agrees for every
term but the LSTMs, which it does not count): 3,000 examples/s would need ~480 GFLOP/s. (An earlier count here gave
the controller an input of 512 and the batch 11 GFLOP.) On this
2-core AMD EPYC (AVX-512) a large float32 matmul (2048 x 2048, 2 threads) ran at 182-229 GFLOP/s (the benchmark
measures it too, `matmul_gflops`: 182 in `results/bench-reasonet-cpu.json`, 229 in the 2026-12-05 run below), so
float32 cannot reach the target even at peak: about 1,100-1,400 examples/s is the ceiling, and the recurrences (small
matrices, sequential steps) run well below peak. The same bfloat16 matmul ran at 739-975 GFLOP/s (oneDNN's AVX512-BF16
kernels; the same two runs), so `--bf16` raises the ceiling; under CPU autocast the LSTM encoders and the linear layers run in bf16,
while the GRU controller and the attention reads stay float32.

Measured 2026-12-05 on a 2-core "AMD EPYC" of family 26 model 2 (AVX-512 with BF16), idle (load average 1.4 from the
benchmark's own start-up), commit dd600ff, default threads (2), `--steps 30`: float32 973 examples/s (best step 1,112,
median 1,056), `--bf16` 1,410 examples/s (best 1,735, median 1,561); its 2048 x 2048 matmul line: float32 229 GFLOP/s,
bfloat16 975 GFLOP/s. At 229 GFLOP/s the ~10.3 GFLOP a batch caps float32 at about 1,420 examples/s.
These are not the numbers of `results/bench-reasonet-cpu.json`, the book's table (ch. 50): that file holds an
earlier, slower measurement (its `git_commit`, fb95f7d; the CPU it ran on is not recorded). Rerun
the table's command above on an idle machine to replace it.

Besides the mean over all timed steps it prints the best and the median step: on a machine shared with other
work, the best step is the closest to what an idle machine does (compare `uptime` load averages too).
"""
from __future__ import annotations
import argparse, json, os, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mrc_book.models.reasonet import ReasoNet, GraphReasoNetConfig  # noqa: E402


def graph_batches(size: str, n: int, batch_size: int, seed: int = 0):
    "Padded (doc, doc_mask, query, query_mask, label) batches and a description of the data used."
    try:
        from mrc_book.data.graphs import generate_graphs
        examples = generate_graphs(size, n, seed)
        vocab = {'<pad>': 0, '<unk>': 1}
        idx = lambda w: vocab.setdefault(w, len(vocab))
        docs = [[idx(w) for w in ex.tokens] for ex in examples]
        queries = [[idx(w) for w in ex.query_tokens] for ex in examples]
        labels = [int(ex.label) for ex in examples]
        source = f"mrc_book.data.graphs.generate_graphs({size!r}, {n}, seed={seed})"
    except ImportError as e:
        print(f"graph generator unavailable ({e}); using random symbol sequences of the same shape")
        g = torch.Generator().manual_seed(seed)
        nodes = 9 if size == 'small' else 18
        lengths = torch.randint(56, 65, (n,), generator=g) if size == 'small' else torch.randint(112, 129, (n,), generator=g)
        docs = [torch.randint(2, nodes + 4, (int(L),), generator=g).tolist() for L in lengths]
        queries = [torch.randint(2, nodes + 4, (3,), generator=g).tolist() for _ in range(n)]
        labels = torch.randint(0, 2, (n,), generator=g).tolist()
        vocab = {str(i): i for i in range(nodes + 4)}
        source = "random symbol sequences (generator missing)"
    batches = []
    for s in range(0, n - batch_size + 1, batch_size):
        d, q = docs[s:s + batch_size], queries[s:s + batch_size]
        N, Q = max(map(len, d)), max(map(len, q))
        doc = torch.zeros(batch_size, N, dtype=torch.long); query = torch.zeros(batch_size, Q, dtype=torch.long)
        for i, (di, qi) in enumerate(zip(d, q)):
            doc[i, :len(di)] = torch.tensor(di); query[i, :len(qi)] = torch.tensor(qi)
        batches.append((doc, doc != 0, query, query != 0, torch.tensor(labels[s:s + batch_size])))
    mean_len = sum(map(len, docs)) / len(docs)
    return batches, len(vocab), f"{source}; {len(batches)} batches, mean graph length {mean_len:.1f} tokens"


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    "Throughput of one large n x n matmul in `dtype` on the CPU with the current threads: the ceiling for this model."
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2): a @ b
    t = time.perf_counter()
    for _ in range(repeats): a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t) / 1e9


def measure(args, threads: int | None, bf16: bool, batches, vocab_size: int) -> dict:
    "Time `args.steps` training steps (after `args.warmup`) with `threads` intra-op threads and bf16 autocast on/off."
    if threads: torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = (GraphReasoNetConfig.large if args.size == 'large' else GraphReasoNetConfig)(vocab_size=vocab_size, mode=args.mode)
    if args.t_max: cfg.t_max = args.t_max
    if args.hidden: cfg.hidden_size = args.hidden
    if args.cell: cfg.cell = args.cell
    device = torch.device(args.device)
    model = ReasoNet(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)

    def step(batch):
        *inputs, y = (t.to(device, non_blocking=True) for t in batch)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(model(*inputs), y)
        loss.backward()
        opt.step()
        return loss

    for b in batches[:args.warmup]: step(b)
    if device.type == 'cuda': torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    step_times = []
    for b in batches[args.warmup:]:
        ts = time.perf_counter()
        loss = step(b)
        if device.type == 'cuda': torch.cuda.synchronize()
        step_times.append(time.perf_counter() - ts)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = args.batch_size * len(step_times)
    load = os.getloadavg() if hasattr(os, 'getloadavg') else None
    print(f"model: ReasoNet graph-{args.size} mode={cfg.mode} hidden={cfg.hidden_size} cell={cfg.cell} t_max={cfg.t_max} "
          f"({sum(p.numel() for p in model.parameters()):,} parameters)")
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, cores {os.cpu_count()}, "
          + (f"load average {load[0]:.1f}, " if load else "") + f"bf16 autocast {'on' if bf16 else 'off'}")
    print(f"{n} examples in {wall:.2f} s wall ({cpu:.2f} s CPU): {n / wall:,.0f} examples/s, "
          f"{1000 * wall / len(step_times):.1f} ms/step, last loss {loss.item():.4f}")
    # on a shared machine the fastest step is the one least slowed by other processes: a better estimate of idle speed
    best, median = min(step_times), sorted(step_times)[len(step_times) // 2]
    print(f"per step: best {1000 * best:.1f} ms ({args.batch_size / best:,.0f} examples/s), "
          f"median {1000 * median:.1f} ms ({args.batch_size / median:,.0f} examples/s)")
    return {'threads': torch.get_num_threads(), 'bf16': bf16, 'examples_per_s': n / wall,
            'best_step_examples_per_s': args.batch_size / best, 'median_step_examples_per_s': args.batch_size / median,
            'ms_per_step': 1000 * wall / len(step_times), 'load_average_1min': load[0] if load else None}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--size', default='small', choices=['small', 'large'])
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--steps', type=int, default=10, help='timed optimizer steps (after --warmup)')
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--threads', default=None,
                    help='torch intra-op threads, or a comma list to measure each (default: torch default)')
    ap.add_argument('--mode', default='reasonet', choices=['reasonet', 'last'])
    ap.add_argument('--t-max', type=int, default=None)
    ap.add_argument('--hidden', type=int, default=None)
    ap.add_argument('--cell', default=None, choices=['lstm', 'gru'])
    ap.add_argument('--bf16', action='store_true', help='bfloat16 autocast, as the trainer does with TrainConfig(bf16=True)')
    ap.add_argument('--both', action='store_true', help='measure float32 and bf16 autocast, one after the other')
    ap.add_argument('--json', help='also write the measurements to this file (e.g. results/bench-reasonet-cpu.json)')
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(',')] if args.threads else [None]
    precisions = [False, True] if args.both else [args.bf16]
    from mrc_book.training import bf16_supported
    fast_bf16 = bf16_supported(args.device)
    if not fast_bf16 and True in precisions:   # emulated bf16 is tens of times slower than float32: nothing to learn
        ap.error(f'--bf16/--both: {args.device} has no fast bfloat16 kernels (a CPU needs AVX-512 BF16 or AMX)')
    batches, vocab_size, desc = graph_batches(args.size, args.batch_size * (args.steps + args.warmup), args.batch_size)
    print(f"data: {desc}")
    results = [measure(args, t, p, batches, vocab_size) for t in threads for p in precisions]
    peaks = None
    if args.device == 'cpu':
        peaks = {str(dt).removeprefix('torch.'): matmul_gflops(dt) if dt == torch.float32 or fast_bf16 else None
                 for dt in (torch.float32, torch.bfloat16)}   # None: no bf16 kernels, the emulated product takes minutes
        print(f"2048 x 2048 matmul, {torch.get_num_threads()} threads: " +
              ', '.join(f'{k} {v:,.0f} GFLOP/s' if v else f'{k}: no fast kernels here' for k, v in peaks.items()))
    if args.json:
        from mrc_book.training import git_commit, device_name, hardware_info
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            'bench': 'reasonet', 'device': device_name(torch.device(args.device)), 'hardware': hardware_info(args.device),
            'torch': torch.__version__,
            'cores': os.cpu_count(), 'git_commit': git_commit(), 'data': desc, 'args': vars(args),
            'matmul_gflops': peaks, 'matmul_threads': torch.get_num_threads(), 'results': results}, indent=1) + '\n')
    return results


if __name__ == '__main__':
    main()
