"""LaDiMo's distillation (arXiv 2408.04278 §4.2-4.3) on corpus-llama-7m in float32 NumPy, outside the engine.

An independent second implementation of the recipe, for questions the engine's own runs cannot settle on
2 CPU cores (a full budget there takes hours): a plain forward (HF modeling_llama.py), capture of the FFN
pairs (x, f(x)) of the last 4 layers, each layer's MoE block trained alone with Adam on
L = MSE + α·‖L_mse‖·L_aux (Switch's L_aux = N·Σ f_i·P_i, f_i held constant), and held-out perplexity and
agreement with the blocks in place. It answered why half the experts starve without norm_topk_prob
(docs/perf.md). Needs numpy; token windows come from tokens.mjs (the project's tokenizer library).

  node scripts/ladimo-reference/tokens.mjs ../shared train 100352 /tmp/ref/calib.u32
  node scripts/ladimo-reference/tokens.mjs ../shared valid 16384 /tmp/ref/valid.u32 [brown-news]   (all domains without)
  python3 scripts/ladimo-reference/reference.py capture ../shared /tmp/ref
  python3 scripts/ladimo-reference/reference.py distill ../shared /tmp/ref TAG LAYER [--plain]
  python3 scripts/ladimo-reference/reference.py ppl ../shared /tmp/ref TAG [--plain]    (TAG dense: the dense model)
"""
import json, struct, sys
import numpy as np

LAYERS = (4, 5, 6, 7)                  # the last 4 of 8
E, K, STEPS, BATCH, LR, ALPHA = 8, 2, 4000, 512, 1e-3, 0.01


def load(shared):
    """bf16 safetensors → float32 arrays, and the config."""
    m = f'{shared}/models/corpus-llama-7m/'
    b = open(m + 'model.safetensors', 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    W = {}
    for k, v in hdr.items():
        if k == '__metadata__': continue
        s, e = v['data_offsets']
        raw = np.frombuffer(b[8 + n + s:8 + n + e], dtype=np.uint16)
        W[k] = (raw.astype(np.uint32) << 16).view(np.float32).reshape(v['shape'])
    return W, json.load(open(m + 'config.json'))


def silu(x): return x / (1 + np.exp(-x))


def forward(W, cfg, ids, capture=(), ffn=None):
    """ids [B, T] → logits [B, T, V] and {layer: (x, f(x))}; ffn {layer: fn} replaces a layer's MLP."""
    H, nh, nkv, hd = cfg['hidden_size'], cfg['num_attention_heads'], cfg['num_key_value_heads'], cfg['head_dim']
    rms = lambda x, w: x / np.sqrt((x * x).mean(-1, keepdims=True) + cfg['rms_norm_eps']) * w
    rot = lambda x: np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
    B, T = ids.shape
    f = np.outer(np.arange(T), 1.0 / 10000 ** (np.arange(0, hd, 2) / hd))
    cos, sin = np.cos(np.concatenate([f, f], -1)).astype(np.float32), np.sin(np.concatenate([f, f], -1)).astype(np.float32)
    mask = np.triu(np.full((T, T), -np.inf, np.float32), 1)
    h, cap = W['model.embed_tokens.weight'][ids], {}
    for l in range(cfg['num_hidden_layers']):
        p = f'model.layers.{l}.'
        x = rms(h, W[p + 'input_layernorm.weight'])
        heads = lambda name, n: (x @ W[p + f'self_attn.{name}_proj.weight'].T).reshape(B, T, n, hd).transpose(0, 2, 1, 3)
        q, k, v = heads('q', nh), heads('k', nkv), heads('v', nkv)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = np.repeat(k, nh // nkv, 1), np.repeat(v, nh // nkv, 1)
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        h = h + (s @ v).transpose(0, 2, 1, 3).reshape(B, T, nh * hd) @ W[p + 'self_attn.o_proj.weight'].T
        x = rms(h, W[p + 'post_attention_layernorm.weight'])
        m = p + 'mlp.'
        y = ffn[l](x) if ffn and l in ffn else (silu(x @ W[m + 'gate_proj.weight'].T) * (x @ W[m + 'up_proj.weight'].T)) @ W[m + 'down_proj.weight'].T
        if l in capture: cap[l] = (x.reshape(-1, H), y.reshape(-1, H))
        h = h + y
    return rms(h, W['model.norm.weight']) @ W['model.embed_tokens.weight'].T, cap


def moe(x, Wr, ex, norm, target=None):
    """The block's output and routing; with a target, also L_mse, L_aux and every weight's gradient."""
    Wg, Wu, Wd = ex
    T = len(x)
    z = x @ Wr.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    S = np.argsort(-p, 1)[:, :K]
    ps = np.take_along_axis(p, S, 1)
    w = ps / ps.sum(1, keepdims=True) if norm else ps
    y, outs = np.zeros_like(x), {}
    for e in range(E):
        tt, ss = np.nonzero(S == e)
        if not len(tt): continue
        g, u = x[tt] @ Wg[e].T, x[tt] @ Wu[e].T
        a = silu(g) * u
        outs[e] = (tt, ss, g, u, a, a @ Wd[e].T)
        y[tt] += w[tt, ss, None] * outs[e][5]
    if target is None: return y, S
    l_mse = ((y - target) ** 2).mean()
    dy = 2 * (y - target) / y.size
    dw, grads = np.zeros_like(w), [np.zeros_like(t) for t in ex]
    for e, (tt, ss, g, u, a, ye) in outs.items():
        dw[tt, ss] = (dy[tt] * ye).sum(1)
        dye = w[tt, ss, None] * dy[tt]
        grads[2][e] = dye.T @ a
        dA, sg = dye @ Wd[e], 1 / (1 + np.exp(-g))
        grads[0][e] = (dA * u * sg * (1 + g * (1 - sg))).T @ x[tt]
        grads[1][e] = (dA * silu(g)).T @ x[tt]
    dps = (dw - (dw * w).sum(1, keepdims=True)) / ps.sum(1, keepdims=True) if norm else dw
    dp = np.zeros_like(p)
    np.put_along_axis(dp, S, dps, 1)
    dz = p * (dp - (dp * p).sum(1, keepdims=True))
    f = np.bincount(S.ravel(), minlength=E) / S.size
    l_aux = E * (f * p.mean(0)).sum()
    # α·‖L_mse‖·L_aux through P_i = mean_t p_ti
    dz += ALPHA * l_mse * E / T * p * (f[None] - (p * f[None]).sum(1, keepdims=True))
    return l_mse, l_aux, [dz.T @ x] + grads


def distill(W, X, F, layer, norm, seed=0):
    """§4.1 contiguous split, N(0, 0.02²) router, Adam; the last 10% of rows held out."""
    n = len(X) - len(X) // 10
    rng = np.random.default_rng(seed + 1000 + layer)
    Wr = (rng.standard_normal((E, X.shape[1])) * 0.02).astype(np.float32)
    m = f'model.layers.{layer}.mlp.'
    sl = np.arange(W[m + 'gate_proj.weight'].shape[0]).reshape(E, -1)
    ex = [W[m + 'gate_proj.weight'][sl].copy(), W[m + 'up_proj.weight'][sl].copy(), np.stack([W[m + 'down_proj.weight'][:, s] for s in sl])]
    held = lambda: (lambda y, S: (((y - F[n:]) ** 2).mean(), np.bincount(S.ravel(), minlength=E) / S.size))(*moe(X[n:], Wr, ex, norm))
    before, load = held()
    print(f'layer {layer}: held-out mse {before:.4g}, load {np.round(load, 3)}', flush=True)
    params = [Wr] + ex
    mom = [(np.zeros_like(q), np.zeros_like(q)) for q in params]
    batches = np.random.default_rng(seed)
    for step in range(1, STEPS + 1):
        b = batches.integers(0, n, BATCH)
        l_mse, l_aux, grads = moe(X[b], Wr, ex, norm, F[b])
        for q, g, (m1, m2) in zip(params, grads, mom):
            m1 *= 0.9; m1 += 0.1 * g; m2 *= 0.999; m2 += 0.001 * g * g
            q -= LR * (m1 / (1 - 0.9 ** step)) / (np.sqrt(m2 / (1 - 0.999 ** step)) + 1e-8)
        if step % 1000 == 0:
            after, load = held()
            print(f'  step {step}: L_mse {l_mse:.4g}, L_aux {l_aux:.3f}; held-out mse {after:.4g} ({before / after:.2f}× lower), load {np.round(load, 3)}', flush=True)
    return Wr, ex


def main():
    cmd, shared, work = sys.argv[1:4]
    norm = '--plain' not in sys.argv
    W, cfg = load(shared)
    if cmd == 'capture':
        ids = np.fromfile(f'{work}/calib.u32', np.uint32).astype(np.int64).reshape(-1, 256)
        caps = [forward(W, cfg, ids[i:i + 16], capture=LAYERS)[1] for i in range(0, len(ids), 16)]
        for l in LAYERS:
            np.save(f'{work}/x{l}.npy', np.concatenate([c[l][0] for c in caps]))
            np.save(f'{work}/f{l}.npy', np.concatenate([c[l][1] for c in caps]))
    elif cmd == 'distill':
        tag, l = sys.argv[4], int(sys.argv[5])
        Wr, ex = distill(W, np.load(f'{work}/x{l}.npy'), np.load(f'{work}/f{l}.npy'), l, norm)
        np.savez(f'{work}/{tag}-L{l}.npz', Wr=Wr, Wg=ex[0], Wu=ex[1], Wd=ex[2])
    elif cmd == 'ppl':
        tag = sys.argv[4]
        ffn = {}
        for l in (LAYERS if tag != 'dense' else ()):
            d = np.load(f'{work}/{tag}-L{l}.npz')
            ffn[l] = (lambda Wr, ex: lambda x: moe(x.reshape(-1, x.shape[-1]), Wr, ex, norm)[0].reshape(x.shape))(d['Wr'], [d['Wg'], d['Wu'], d['Wd']])
        ids = np.fromfile(f'{work}/valid.u32', np.uint32).astype(np.int64).reshape(-1, 256)
        nll, top = 0.0, []
        for i in range(0, len(ids), 8):
            lg = forward(W, cfg, ids[i:i + 8], ffn=ffn)[0][:, :-1]
            t = ids[i:i + 8, 1:]
            mx = lg.max(-1, keepdims=True)
            nll += (np.log(np.exp(lg - mx).sum(-1)) + mx[..., 0] - np.take_along_axis(lg, t[..., None], -1)[..., 0]).sum()
            top.append(lg.argmax(-1))
        top = np.concatenate(top)
        np.save(f'{work}/argmax-{tag}.npy', top)
        line = f'{tag}: perplexity {np.exp(nll / top.size):.3f} over {top.size} tokens'
        if tag != 'dense': line += f', agreement with dense {(top == np.load(f"{work}/argmax-dense.npy")).mean():.4f}'
        print(line)
    else:
        sys.exit(f'unknown command {cmd} (capture, distill, ppl)')


if __name__ == '__main__':
    main()
