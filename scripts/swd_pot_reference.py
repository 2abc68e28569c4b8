#!/usr/bin/env python3
"""Reference sliced Wasserstein distances from POT (PyPI package POT) on fixed data and fixed
projection directions, for tests/drift_pot.rs:

    /work/main/.venv/bin/python scripts/swd_pot_reference.py > tests/fixtures/swd_pot.json

Each case stores X (n x d), Y (m x d), the projections as L unit rows (POT takes the transpose,
shape (d, L)), p, and POT's ot.sliced_wasserstein_distance(X, Y, a=None, b=None,
n_projections=L, p=p, projections=P).
"""
import json
import sys

import numpy as np
import ot


def make_case(rng, n, m, d, L, p, shift):
    X = rng.normal(0.0, 1.0, (n, d))
    Y = rng.standard_t(4.0, (m, d)) * 1.3 + shift
    P = rng.normal(0.0, 1.0, (d, L))
    P /= np.sqrt(np.sum(P**2, axis=0, keepdims=True))
    swd = ot.sliced_wasserstein_distance(X, Y, a=None, b=None, n_projections=L, p=p, projections=P)
    return {
        "n": n,
        "m": m,
        "dim": d,
        "p": p,
        "x": X.ravel().tolist(),
        "y": Y.ravel().tolist(),
        "projections": P.T.ravel().tolist(),  # L rows of d
        "swd": float(swd),
    }


def cases(seed):
    rng = np.random.default_rng(seed)
    specs = [
        (37, 23, 5, 16, 2, 0.4),  # unequal sizes
        (50, 50, 3, 8, 2, 0.0),  # equal sizes, same location
        (10, 31, 7, 32, 2, 1.0),  # small vs larger
        (40, 17, 4, 12, 1, 0.3),  # p = 1
        (1, 5, 2, 3, 2, 0.0),  # a single point
        (64, 200, 16, 50, 2, 0.2),  # the monitor's shape: 16 features
    ]
    return [make_case(rng, *s) for s in specs]


def main():
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    out = {"seed": seed, "pot_version": ot.__version__, "cases": cases(seed)}
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
