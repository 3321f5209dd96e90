"""A careful PyTorch implementation of what `cargo bench --bench bert` times, for comparison.

MiniLM-L6 (the checkpoint `geosharp fetch` unpacks into .geosharp/minilm-l6-v2) plus a linear
head on the mean-pooled embedding, in plain PyTorch: F.linear, F.layer_norm, exact-erf F.gelu,
F.scaled_dot_product_attention with the padding mask. It times, on the very batch the Rust
bench timed (`cargo bench --bench bert -- BATCH` writes it to target/bert-bench-batch-BATCH.json;
else random ids, 57 tokens, half the rows padded from token 40), with the same number of CPU
threads as geosharp (2 on the development machine), each of two encoders:

* padded: every layer on the padded [batch, tokens, 384] tensor, as Hugging Face's BertModel
  and every PyTorch sharpness code base run it;
* packed: the token-wise layers (embeddings, linear layers, GELU, LayerNorm, residuals) on the
  real tokens only, attention on the padded layout -- what geosharp's models::packing does;

and for each:

* forward+backward with respect to every one of the 22.6 M parameters, and
* one iteration of adaptive Auto-PGD as geosharp runs it: set w = w0 + T*xi (T = |w0| + eta),
  forward+backward, the xi-gradient T*g, the normalised ascent step, the momentum step, the
  projections onto the rho-ball, the best-so-far bookkeeping -- every O(#parameters) update
  as torch._foreach_* kernels (one fused pass per op over all parameter tensors), no Python
  loops over scalars.

Per-iteration cost is (T(LONG) - T(SHORT)) / (LONG - SHORT), as in the Rust bench, the minimum
over REPEATS runs. Token ids are drawn at random: the cost of a pass does not depend on them.

    python benches/pytorch/reference.py [BATCH] [THREADS] [padded|packed|both]

Needs torch, safetensors (pip install torch safetensors --index-url ...cpu). Not part of CI.
"""

import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

CHECKPOINT = ".geosharp/minilm-l6-v2/model.safetensors"
TOKENS = 57
HEADS = 12
EPS = 1e-12
SHORT, LONG, REPEATS = 2, 6, 2


def load():
    """The checkpoint's tensors the encoder uses, plus a 384 -> 2 head, all requiring grad."""
    raw = load_file(CHECKPOINT)
    params = {
        k: v.float().clone() for k, v in raw.items() if not k.startswith("pooler") and k != "embeddings.position_ids"
    }
    torch.manual_seed(0)
    params["head.weight"] = torch.randn(2, 384) * 0.05
    params["head.bias"] = torch.zeros(2)
    for v in params.values():
        v.requires_grad_(True)
    return params


class Packing:
    """Where the real tokens of a padded [n, t] batch are (geosharp's models::packing)."""

    def __init__(self, mask):
        self.n, self.t = mask.shape
        self.rows = mask.reshape(-1).nonzero().squeeze(1)

    def pack_ids(self, ids):
        return ids.reshape(-1)[self.rows]

    def pack(self, x):
        return x.reshape(self.n * self.t, -1)[self.rows]

    def unpack(self, y):
        out = y.new_zeros(self.n * self.t, y.shape[1])
        return out.index_put((self.rows,), y).view(self.n, self.t, -1)


def forward(p, ids, mask, packed=False):
    """Mean-pooled, L2-normalised embedding -> head logits (post-LN BERT)."""
    n, t = ids.shape
    positions = torch.arange(t).expand(n, t)
    if packed:
        packing = Packing(mask)
        ids, positions = packing.pack_ids(ids), packing.pack_ids(positions)
        unpack, pack = packing.unpack, packing.pack
    else:
        unpack = pack = lambda y: y
    x = (
        F.embedding(ids, p["embeddings.word_embeddings.weight"])
        + F.embedding(positions, p["embeddings.position_embeddings.weight"])
        + p["embeddings.token_type_embeddings.weight"][0]
    )
    x = F.layer_norm(x, (384,), p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"], EPS)
    additive = ((1.0 - mask) * -10000.0)[:, None, None, :]
    h = 384 // HEADS
    for i in range(6):
        a = f"encoder.layer.{i}."
        split = lambda y: unpack(y).view(n, t, HEADS, h).transpose(1, 2)
        q = split(F.linear(x, p[a + "attention.self.query.weight"], p[a + "attention.self.query.bias"]))
        k = split(F.linear(x, p[a + "attention.self.key.weight"], p[a + "attention.self.key.bias"]))
        v = split(F.linear(x, p[a + "attention.self.value.weight"], p[a + "attention.self.value.bias"]))
        ctx = pack(F.scaled_dot_product_attention(q, k, v, attn_mask=additive).transpose(1, 2).reshape(n, t, 384))
        y = F.linear(ctx, p[a + "attention.output.dense.weight"], p[a + "attention.output.dense.bias"])
        x = F.layer_norm(
            x + y, (384,), p[a + "attention.output.LayerNorm.weight"], p[a + "attention.output.LayerNorm.bias"], EPS
        )
        y = F.gelu(F.linear(x, p[a + "intermediate.dense.weight"], p[a + "intermediate.dense.bias"]))
        y = F.linear(y, p[a + "output.dense.weight"], p[a + "output.dense.bias"])
        x = F.layer_norm(x + y, (384,), p[a + "output.LayerNorm.weight"], p[a + "output.LayerNorm.bias"], EPS)
    m = mask[:, :, None]
    pooled = (unpack(x) * m).sum(1) / m.sum(1).clamp_min(1e-9)
    pooled = F.normalize(pooled, dim=1)
    return F.linear(pooled, p["head.weight"], p["head.bias"])


def loss_and_grad(p, names, ids, mask, labels, packed):
    loss = F.cross_entropy(forward(p, ids, mask, packed), labels)
    grads = torch.autograd.grad(loss, [p[k] for k in names])
    return loss.detach(), list(grads)


def sq_norm(ts):
    return sum(float(n) ** 2 for n in torch._foreach_norm(ts))


def project(xs, rho):
    """xs <- xs * min(1, rho / ||xs||), in place."""
    norm = math.sqrt(sq_norm(xs))
    if norm > rho:
        torch._foreach_mul_(xs, rho / norm)


def auto_pgd(p, names, ids, mask, labels, packed, iters, rho=0.05, eta=0.0):
    """Adaptive Auto-PGD (Croce & Hein's schedule, as geosharp::measures::worst_case)."""
    base = [p[k].detach().clone() for k in names]
    scale = torch._foreach_add(torch._foreach_abs(base), eta)
    xi = [torch.zeros_like(b) for b in base]
    prev = [torch.zeros_like(b) for b in base]
    best = [torch.zeros_like(b) for b in base]
    best_loss, step, alpha = -math.inf, 2.0 * rho, 0.75
    with torch.no_grad():
        for _ in range(iters):
            for k, b, t, x in zip(names, base, scale, xi):
                torch.addcmul(b, t, x, out=p[k].data)  # w = w0 + T xi
            with torch.enable_grad():
                loss, g = loss_and_grad(p, names, ids, mask, labels, packed)
            loss = float(loss)
            if loss > best_loss:
                best_loss = loss
                torch._foreach_copy_(best, xi)
            torch._foreach_mul_(g, scale)  # the xi-gradient T g
            gnorm = math.sqrt(sq_norm(g)) + 1e-12
            z = torch._foreach_add(xi, g, alpha=step / gnorm)  # ascent step
            project(z, rho)
            # xi_new = xi + alpha (z - xi) + (1 - alpha)(xi - prev)
            new = torch._foreach_mul(xi, 1.0 + (1.0 - alpha) - alpha)
            torch._foreach_add_(new, z, alpha=alpha)
            torch._foreach_add_(new, prev, alpha=-(1.0 - alpha))
            project(new, rho)
            prev, xi = xi, new
        for k, b in zip(names, base):
            p[k].data.copy_(b)
    return best_loss


def seconds(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def batch_of(size):
    """The Rust bench's batch if it wrote one, else random ids with a fixed padding pattern."""
    path = f"target/bert-bench-batch-{size}.json"
    if os.path.exists(path):
        with open(path) as f:
            b = json.load(f)
        ids, mask, labels = torch.tensor(b["ids"]), torch.tensor(b["mask"]).float(), torch.tensor(b["labels"])
        return ids, mask, labels, path
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 30000, (size, TOKENS), generator=gen)
    mask = torch.ones(size, TOKENS)
    mask[size // 2 :, 40:] = 0.0
    labels = torch.randint(0, 2, (size,), generator=gen)
    return ids, mask, labels, "random ids"


def main():
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 128
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    modes = sys.argv[3] if len(sys.argv) > 3 else "both"
    torch.set_num_threads(threads)
    p = load()
    names = list(p.keys())
    numel = sum(p[k].numel() for k in names)
    ids, mask, labels, source = batch_of(batch)
    n, t = ids.shape
    print(
        f"torch {torch.__version__}, {threads} threads; MiniLM-L6 + head ({numel} parameters), "
        f"{n} x {t} ({int(mask.sum())} real tokens, {source})"
    )
    with torch.no_grad():
        gap = (forward(p, ids, mask, False) - forward(p, ids, mask, True)).abs().max()
    print(f"max |logits padded - packed| = {float(gap):.2e}")
    for packed in {"padded": [False], "packed": [True]}.get(modes, [False, True]):
        name = "packed" if packed else "padded"
        fb = min(seconds(lambda: loss_and_grad(p, names, ids, mask, labels, packed)) for _ in range(3))
        print(f"{name}: forward+backward {fb:.3f} s (min of 3)")
        run = lambda iters: auto_pgd(p, names, ids, mask, labels, packed, iters)
        short = min(seconds(lambda: run(SHORT)) for _ in range(REPEATS))
        long = min(seconds(lambda: run(LONG)) for _ in range(REPEATS))
        per = (long - short) / (LONG - SHORT)
        print(f"{name}: adaptive Auto-PGD {per:.3f} s per iteration ({per / fb:.3f}x forward+backward)")


if __name__ == "__main__":
    main()
