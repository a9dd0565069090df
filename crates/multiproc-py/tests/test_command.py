"""The ``multiproc`` command that pip installs: ``ls`` and ``clean`` find
and remove what a killed Manager server left (its socket file, in a
registry private to this test), ``bench`` runs the benchmark."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

# pip installs the command next to the interpreter.
COMMAND = os.path.join(os.path.dirname(sys.executable), "multiproc")


def _run(args, env, **kw):
    return subprocess.run([COMMAND, *args], env=env, capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ)
    e["MULTIPROC_REGISTRY_DIR"] = str(tmp_path / "registry")
    return e


def test_the_command_is_installed():
    assert os.access(COMMAND, os.X_OK), COMMAND
    r = subprocess.run([COMMAND, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "ls" in r.stdout and "clean" in r.stdout


def test_ls_and_clean_remove_what_a_killed_server_left(env, tmp_path):
    script = tmp_path / "leave.py"
    script.write_text(textwrap.dedent("""
        import os, signal
        import multiproc as mp
        m = mp.Manager()
        print(m.address, flush=True)
        os.kill(m._process.pid, signal.SIGKILL)
        m._process.join(30)
        os._exit(0)  # no shutdown: what the server left stays
    """))
    r = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    path = r.stdout.strip()
    assert os.path.exists(path), r.stdout
    ls = _run(["ls", "--json"], env)
    assert ls.returncode == 0, ls.stderr
    objs = json.loads(ls.stdout)["objects"]
    ours = [o for o in objs if o["name"] == path]
    assert ours and ours[0]["kind"] == "socket" and not ours[0]["owner_alive"], objs
    dry = _run(["clean", "--dry-run"], env)
    assert f"would remove socket {path}" in dry.stdout and os.path.exists(path)
    clean = _run(["clean"], env)
    assert clean.returncode == 0, clean.stderr
    assert f"removed {path}" in clean.stdout and not os.path.exists(path)
    assert json.loads(_run(["ls", "--json"], env).stdout)["objects"] == []
    bad = _run(["ls", "--kind", "nonsense"], env)
    assert bad.returncode == 2 and "unknown kind" in bad.stderr


def test_bench_runs_through_the_command(env):
    r = _run(["bench", "--help"], env)
    assert r.returncode == 0 and "--quick" in r.stdout
