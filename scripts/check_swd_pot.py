#!/usr/bin/env python3
"""Live check of src/drift.rs against POT: renders fresh cases with POT installed here (a new
seed each run unless given), and runs the Rust comparison on them.

    /work/main/.venv/bin/python scripts/check_swd_pot.py [SEED]

It writes the cases to a temporary JSON file and runs
`cargo test --test drift_pot -- --ignored live_pot_cases` with ENDFACE_SWD_FIXTURE pointing
at it (the Rust test asserts |rust - POT| <= 1e-6 on every case). It also checks that the
committed fixture tests/fixtures/swd_pot.json still matches what POT computes today.
"""
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import swd_pot_reference as ref  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    # 1. The committed fixture still agrees with the installed POT.
    fixture = json.loads((ROOT / "tests/fixtures/swd_pot.json").read_text())
    again = ref.cases(fixture["seed"])
    for k, (a, b) in enumerate(zip(fixture["cases"], again)):
        if abs(a["swd"] - b["swd"]) > 1e-12:
            sys.exit(f"fixture case {k}: stored {a['swd']} but POT {ref.ot.__version__} gives {b['swd']}")
    print(f"committed fixture matches POT {ref.ot.__version__} ({len(again)} cases)")

    # 2. Fresh cases, compared by the Rust test.
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else random.randrange(1 << 31)
    doc = {"seed": seed, "pot_version": ref.ot.__version__, "cases": ref.cases(seed)}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
        path = f.name
    env = dict(os.environ, ENDFACE_SWD_FIXTURE=path)
    cmd = ["cargo", "test", "--test", "drift_pot", "--", "--ignored", "live_pot_cases", "--nocapture"]
    print(f"seed {seed}: {' '.join(cmd)}")
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    os.unlink(path)
    sys.exit(rc)


if __name__ == "__main__":
    main()
