"""Apply each planted bug ("mutant") of ``tests/mutants/catalogue.toml`` to a scratch copy of the
repository, run the tests expected to catch it, and report which test failed and how fast.

    .venv/bin/python tests/mutants/run.py                       # every mutant
    .venv/bin/python tests/mutants/run.py --only raft-figure8   # some (also MUTANTS=a,b)
    .venv/bin/python tests/mutants/run.py --baseline            # catching tests pass unmutated
    .venv/bin/python tests/mutants/run.py --markdown table.md   # also write the table

The repository itself is never modified: every run copies the tracked files as they are in the
working tree (``git ls-files``) to a temporary directory, applies the patch there with
``git apply`` and runs from there with ``PYTHONPATH`` set to it, so the copy's code is imported
rather than the editable install's. Exit status 0 only if every mutant was caught (a listed
test failed) or, with ``--baseline``, every catching command passed on the unmutated copy.
See ``tests/mutants/README.md``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CATALOGUE = HERE / "catalogue.toml"
PACKAGES = ("storage", "kraft", "broker", "tools")
# Node ids in pytest's short summary: "FAILED tests/x.py::test_y[p] - message".
SUMMARY = re.compile(r"^(FAILED|ERROR) (\S+)")


@dataclass(frozen=True, slots=True)
class Mutant:
    id: str
    description: str
    patch: Path
    tests: tuple[str, ...]  # pytest node ids, run in one pytest process
    command: tuple[str, ...]  # or a command ("{python}" is the interpreter); non-zero = caught
    timeout: float

    @property
    def what(self) -> str:
        return " ".join(self.tests) if self.tests else " ".join(self.command)


@dataclass(slots=True)
class Outcome:
    mutant: Mutant
    status: str  # caught / survived / timeout / error / passed (baseline) / failed (baseline)
    seconds: float
    failed: list[str] = field(default_factory=list)
    detail: str = ""


def load_catalogue(path: Path = CATALOGUE) -> list[Mutant]:
    with path.open("rb") as f:
        data = tomllib.load(f)
    default_timeout = float(data.get("timeout", 600))
    out: list[Mutant] = []
    seen: set[str] = set()
    for raw in data.get("mutant", []):
        mid = raw["id"]
        if mid in seen:
            raise ValueError(f"{path}: mutant {mid!r} listed twice")
        seen.add(mid)
        tests = tuple(raw.get("tests", ()))
        command = tuple(raw.get("command", ()))
        if bool(tests) == bool(command):
            raise ValueError(f"{path}: mutant {mid!r} needs either tests or command")
        out.append(Mutant(mid, raw["description"], path.parent / raw["patch"], tests, command,
                          float(raw.get("timeout", default_timeout))))
    return out


def tracked_files(repo: Path, untracked: bool = False) -> list[str]:
    extra = ["--cached", "--others", "--exclude-standard"] if untracked else []
    out = subprocess.run(["git", "ls-files", "-z", *extra], cwd=repo, capture_output=True,
                         check=True)
    return [p for p in out.stdout.decode().split("\0") if p]


def scratch_copy(repo: Path, dest: Path, untracked: bool = False) -> None:
    """The tracked files as they are in the working tree (a file deleted there is skipped);
    with ``untracked`` also files git does not ignore but does not track yet."""
    for rel in tracked_files(repo, untracked):
        src = repo / rel
        if not src.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def child_env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(scratch)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYKRAFT_FSYNC_LOG", None)  # test mode only where a test turns it on
    return env


def check_imports(python: str, scratch: Path) -> None:
    """The copy's packages must win over the editable install that points at the repo."""
    code = "import sys, importlib\n" + "".join(
        f"print(importlib.import_module({p!r}).__file__)\n" for p in PACKAGES)
    r = subprocess.run([python, "-c", code], cwd=scratch, env=child_env(scratch),
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"importing from the scratch copy failed:\n{r.stderr}")
    root = scratch.resolve()
    for line in r.stdout.split():
        if not Path(line).resolve().is_relative_to(root):
            raise RuntimeError(f"{line} imported from outside the scratch copy {root}")


def apply_patch(patch: Path, scratch: Path) -> None:
    for args in (["--check"], []):
        r = subprocess.run(["git", "apply", *args, str(patch)], cwd=scratch,
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"{patch.name} does not apply: {r.stderr.strip()}")


def run_command(argv: list[str], cwd: Path, env: dict[str, str], timeout: float
                ) -> tuple[int | None, str, float]:
    """(exit status or None on timeout, output, seconds). The command runs in its own process
    group so that a timeout also ends the nodes a test started."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out, time.monotonic() - start
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out, time.monotonic() - start


def failed_ids(output: str) -> list[str]:
    return [m.group(2) for line in output.splitlines() if (m := SUMMARY.match(line))]


def run_one(m: Mutant, python: str, *, baseline: bool, keep: bool, verbose: bool,
            untracked: bool) -> Outcome:
    root = Path(tempfile.mkdtemp(prefix=f"pykraft-mutant-{m.id}-"))
    scratch = root / "repo"
    try:
        scratch_copy(REPO, scratch, untracked)
        check_imports(python, scratch)
        if not baseline:
            apply_patch(m.patch, scratch)
        env = child_env(scratch)
        if m.tests:
            argv = [python, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
                    f"--basetemp={root / 'pytest-tmp'}", *([] if baseline else ["-x"]),
                    *m.tests]
        else:
            argv = [python if a == "{python}" else a for a in m.command]
        rc, out, seconds = run_command(argv, scratch, env, m.timeout)
        if verbose or (baseline and rc != 0):
            print(out, flush=True)
        failed = failed_ids(out) if m.tests else []
        if rc is None:
            status = "timeout"
        elif baseline:
            status = "passed" if rc == 0 else "failed"
        elif m.tests:
            # 1: tests failed. Anything else (collection or usage error, nothing collected,
            # an ERROR in a fixture only) says the mutant broke the run, not that a test
            # caught it.
            only_errors = not any(line.startswith("FAILED ") for line in out.splitlines())
            status = "survived" if rc == 0 else "caught" if rc == 1 and not only_errors \
                else "error"
        else:
            status = "caught" if rc != 0 else "survived"
            failed = [m.what] if rc != 0 else []
        tail = "\n".join(out.splitlines()[-15:])
        return Outcome(m, status, seconds, failed, "" if status in ("caught", "passed") else tail)
    except RuntimeError as e:
        return Outcome(m, "error", 0.0, detail=str(e))
    finally:
        if keep:
            print(f"kept {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


def table(outcomes: list[Outcome], baseline: bool) -> list[list[str]]:
    rows = [["mutant", "catching command" if baseline else "caught by", "seconds"]]
    for o in outcomes:
        if baseline:
            what = f"{o.status}: {o.mutant.what}"
        elif o.status == "caught":
            what = ", ".join(f"`{t}`" for t in o.failed)
        else:
            what = f"**{o.status.upper()}**"
        rows.append([o.mutant.id, what, f"{o.seconds:.1f}"])
    return rows


def markdown(rows: list[list[str]]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def plain(rows: list[list[str]]) -> str:
    rows = [[c.replace("`", "").replace("**", "") for c in r] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=os.environ.get("MUTANTS", ""),
                    help="comma-separated mutant ids (default: $MUTANTS, else all)")
    ap.add_argument("--baseline", action="store_true",
                    help="run every catching command on the unmutated copy: all must pass")
    ap.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the tests")
    ap.add_argument("--keep", action="store_true", help="keep the scratch copies")
    ap.add_argument("--untracked", action="store_true",
                    help="also copy files not yet tracked by git (new tests being written)")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every command's output")
    ap.add_argument("--list", action="store_true", help="list the catalogue and exit")
    ap.add_argument("--catalogue", type=Path, default=CATALOGUE, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    mutants = load_catalogue(a.catalogue.resolve())
    if a.only:
        wanted = [s.strip() for s in a.only.split(",") if s.strip()]
        unknown = sorted(set(wanted) - {m.id for m in mutants})
        if unknown:
            ap.error(f"unknown mutant(s): {', '.join(unknown)}")
        mutants = [m for m in mutants if m.id in wanted]
    if a.list:
        for m in mutants:
            print(f"{m.id}: {m.description}\n    {m.patch.name}; {m.what} (timeout {m.timeout:g} s)")
        return 0

    outcomes: list[Outcome] = []
    for m in mutants:
        label = "baseline" if a.baseline else "mutant"
        print(f"[{label}] {m.id}: {m.what}", flush=True)
        o = run_one(m, a.python, baseline=a.baseline, keep=a.keep, verbose=a.verbose,
                    untracked=a.untracked)
        print(f"[{label}] {m.id}: {o.status} in {o.seconds:.1f} s"
              + (f" by {', '.join(o.failed)}" if o.status == "caught" else ""), flush=True)
        if o.detail:
            print(o.detail, flush=True)
        outcomes.append(o)

    rows = table(outcomes, a.baseline)
    print()
    print(plain(rows), end="")
    if a.markdown is not None:
        a.markdown.write_text(markdown(rows))
    good = "passed" if a.baseline else "caught"
    bad = [o for o in outcomes if o.status != good]
    if bad:
        print(f"\n{len(bad)} of {len(outcomes)} not {good}: "
              + ", ".join(f"{o.mutant.id} ({o.status})" for o in bad))
        return 1
    print(f"\nall {len(outcomes)} {good}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
