#!/usr/bin/env python
"""R-NET speed at the report's sizes: training examples/second and prediction time, both attention forms.

Synthetic batches with realistic shapes (SQuAD: batch 64, passages of ~150-300 tokens, questions of 30,
up to 16 characters a word; passage lengths drawn in [0.7 T, T] so masks do real work).
A training step is forward + backward + Adam, as in training; prediction is forward + span decoding. `ops/step`
counts the operations one training step dispatches (a cuDNN GRU call is one; on a CPU a GRU decomposes into
per-time-step operations, so there the count mostly measures the GRUs). Batches start
on the CPU and the model copies them to the device, as in training (results/bench-rnet-h200.json was made before
this change, with batches already on the device).

    python bench/rnet.py --device cuda                       # both forms, passages 150 and 300
    python bench/rnet.py --forms fast --passage 300 --steps 20 --json results/bench-rnet.json
    python bench/rnet.py --device cpu --batch 8 --passage 100 --steps 2   # a quick look on a CPU
"""
from __future__ import annotations
import argparse, json, platform, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mrc_book.models.rnet import RNet, RNetConfig  # noqa: E402
from mrc_book.training import OpCount  # noqa: E402


def synthetic_batch(batch: int, passage: int, question: int, word_len: int, vocab: int, n_chars: int,
                    generator: torch.Generator) -> dict:
    "A SQuAD-shaped batch: right-padded words, 1..word_len characters a word, answers of <= 16 tokens."
    def side(T, min_frac):
        lengths = torch.randint(max(1, int(min_frac * T)), T + 1, (batch,), generator=generator)
        lengths[0] = T                                        # the batch is as long as its longest example
        mask = torch.arange(T)[None] < lengths[:, None]
        words = torch.randint(2, vocab, (batch, T), generator=generator) * mask
        n_chars_word = torch.randint(1, word_len + 1, (batch, T), generator=generator)
        cmask = (torch.arange(word_len)[None, None] < n_chars_word[..., None]) & mask[..., None]
        chars = torch.randint(2, n_chars, (batch, T, word_len), generator=generator) * cmask
        return words, chars, mask, lengths
    cw, cc, cm, clen = side(passage, 0.7)
    qw, qc, qm, _ = side(question, 0.3)
    start = (torch.rand(batch, generator=generator) * (clen - 16).clamp(min=1)).long()
    end = torch.minimum(start + torch.randint(0, 16, (batch,), generator=generator), clen - 1)
    return dict(context_words=cw, context_chars=cc, context_mask=cm, question_words=qw, question_chars=qc,
                question_mask=qm, start=start, end=end)


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def bench_one(form: str, passage: int, args, device) -> dict:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    config = RNetConfig(attention_form=form, attention_score=args.score, extra_bigru=args.extra_bigru)
    model = RNet(config, torch.randn(args.vocab, args.dim), n_chars=args.chars, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [synthetic_batch(args.batch, passage, args.question, args.word_len, args.vocab, args.chars, g)
               for _ in range(2)]
    # batches stay on the CPU, as in training (bundle_batch builds them there): the model copies them to the device
    if device.type == 'cuda': torch.cuda.reset_peak_memory_stats(device)

    def train_step(b):
        opt.zero_grad(set_to_none=True)
        loss = model.loss(b)
        loss.backward()
        opt.step()

    model.train()
    for i in range(args.warmup): train_step(batches[i % 2])
    sync(device); t0 = time.perf_counter()
    for i in range(args.steps): train_step(batches[i % 2])
    sync(device); train_s = (time.perf_counter() - t0) / args.steps
    with OpCount() as ops: train_step(batches[0])
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == 'cuda' else None

    model.eval()
    for i in range(args.warmup): model.predict(batches[i % 2])
    sync(device); t0 = time.perf_counter()
    for i in range(args.steps): model.predict(batches[i % 2])
    sync(device); pred_s = (time.perf_counter() - t0) / args.steps
    return dict(form=form, passage=passage, batch=args.batch, train_ms_per_step=1000 * train_s,
                train_examples_per_s=args.batch / train_s, predict_ms_per_batch=1000 * pred_s,
                predict_examples_per_s=args.batch / pred_s, peak_train_mib=peak, ops_per_step=ops.n)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--forms', nargs='+', default=['fast', 'recurrent'], choices=['fast', 'recurrent'])
    p.add_argument('--passage', nargs='+', type=int, default=[150, 300], help='passage lengths (tokens)')
    p.add_argument('--question', type=int, default=30)
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--word-len', type=int, default=16, help='characters a word (at most)')
    p.add_argument('--vocab', type=int, default=50000)
    p.add_argument('--dim', type=int, default=300, help='word vector size (GloVe 840B: 300)')
    p.add_argument('--chars', type=int, default=200, help='character vocabulary size')
    p.add_argument('--score', default='additive', choices=['additive', 'scaled_dot'])
    p.add_argument('--extra-bigru', action='store_true', help='the March 2017 version')
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--json', help='also write the results to this file')
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda but torch.cuda.is_available() is False')
    if args.score == 'scaled_dot' and 'recurrent' in args.forms:
        p.error("--score scaled_dot needs --forms fast (the recurrent form of eq. 2 is additive)")
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'
    print(f'R-NET, hidden 75, batch {args.batch}, question {args.question}, {args.word_len} chars/word, '
          f'{args.score} attention, on {name} (torch {torch.__version__})')
    print(f"{'form':<10} {'T':>4} {'train ms/step':>14} {'train ex/s':>11} {'predict ms/batch':>17} "
          f"{'predict ex/s':>13} {'peak MiB':>9} {'ops/step':>9}")
    rows = []
    for form in args.forms:
        for T in args.passage:
            r = bench_one(form, T, args, device)
            rows.append(r)
            peak = f"{r['peak_train_mib']:.0f}" if r['peak_train_mib'] is not None else '-'
            print(f"{form:<10} {T:>4} {r['train_ms_per_step']:>14.1f} {r['train_examples_per_s']:>11.1f} "
                  f"{r['predict_ms_per_batch']:>17.1f} {r['predict_examples_per_s']:>13.1f} {peak:>9} {r['ops_per_step']:>9,}", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        from mrc_book.training import hardware_info   # which CPU: two can share a name and not a speed
        Path(args.json).write_text(json.dumps(dict(device=name, hardware=hardware_info(device), torch=torch.__version__, args=vars(args),
                                                   results=rows), indent=1))
    return rows


if __name__ == '__main__':
    main()
