"""The seeds' programs (tests/seeds/, see its README) run with multiproc in
place of multiprocessing; each one's output is checked."""

import os
import re
import subprocess
import sys

import pytest

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def seed_env():
    """The environment the seeds run in: without ``PYTHONUNBUFFERED``.

    With it (these machines set it), each ``print`` argument, separator and
    newline is its own ``write(2)``, so lines that two processes print at
    once interleave mid-line in the captured output ("接收消息:发送消息: "),
    and a parser misses an item that was delivered. That was the "lost or
    reordered queue items" of the README's test under load: 4 of 150
    ``s002_pipe.py`` runs and 2 of 150 ``s002_queue.py`` runs mis-parsed with
    it, 0 of 150 each without it (three busy processes on two cores). Block
    buffered, ``print(..., flush=True)`` is one write of the whole line,
    atomic on a pipe.
    """
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    return env


def run(name, *args):
    out = subprocess.run(
        [sys.executable, os.path.join(SEEDS, name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=SEEDS,
        env=seed_env(),
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    return out.stdout


def lines(out, pattern):
    return [m.group(1) for m in re.finditer(pattern, out)]


def test_each_printed_line_is_one_write():
    # What keeps concurrent children's lines whole in the captured output.
    out = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.stdout.write_through, sys.stdout.line_buffering)"],
        capture_output=True,
        text=True,
        timeout=60,
        env=seed_env(),
    )
    assert out.stdout == "False False\n", (out.stdout, out.stderr)


def test_000_pipe():
    out = run("s000_pipe.py")
    assert lines(out, r"消费者接收到消息： (\d+)") == [str(i) for i in range(10)]


def test_000_queue():
    out = run("s000_queue.py")
    assert lines(out, r"消费者接收到: 第(\d+)个消息") == [str(i) for i in range(10)]
    assert lines(out, r"生产者发送第(\d+)个消息") == [str(i) for i in range(10)]


def test_000_manager_with_multiproc_lock():
    out = run("s000_manager.py")
    assert lines(out, r"当前为：(\d+)") == [str(i) for i in range(20, 0, -1)]


def test_000_semaphore():
    out = run("s000_semaphore.py")
    assert sorted(lines(out, r"user(\d+) 占到")) == sorted(str(i) for i in range(13))
    most = int(lines(out, r"most inside at once: (\d+)")[0])
    assert 1 <= most <= 5


def test_000_event():
    out = run("s000_event.py")
    assert out.index("小贩：等待就餐") < out.index("顾客：买到早餐")
    assert "顾客：付款，真好吃..." in out and "小贩：谢谢光临" in out


def test_001_ticket(tmp_path):
    out = run("s001_ticket.py", str(tmp_path))
    assert len(lines(out, r"(\d+)购票成功")) == 1
    assert len(lines(out, r"(\d+)购票失败")) == 9
    assert len(lines(out, r"(\d+)查询到余票")) == 10


def test_001_manager_dict():
    out = run("s001_manager_dict.py")
    assert out.splitlines()[-1] == "{'a': 'a'}"


def test_001_pipe():
    out = run("s001_pipe.py")
    assert lines(out, r"收到数据(\d+)") == [str(i) for i in range(1, 11)]


def test_001_queue10():
    out = run("s001_queue10.py")
    assert out == "1 2 3 4 5 6 7 8 9 10 \n1->2->3->4->5->6->7->8->9->10->"


def test_001_producer_customer():
    out = run("s001_producer_customer.py")
    assert lines(out, r"消费者获取数据: ([\d.e-]+)") == lines(out, r"生产者产生数据: ([\d.e-]+)")


def test_001_joinable():
    out = run("s001_joinable.py")
    assert sorted(lines(out, r"消费者获取数据: ([\d.e-]+)")) == sorted(
        lines(out, r"生产者产生数据: ([\d.e-]+)")
    )
    assert len(lines(out, r"消费者获取数据: ([\d.e-]+)")) == 20
    assert out.rstrip().endswith("all done")


def test_002_queue():
    out = run("s002_queue.py")
    # Every check names its own failure: a producer that died (no
    # traceback from a signal), an item lost, or a sentinel overtaking.
    assert "exitcodes 0 0" in out, out
    assert lines(out, r"生产者放入数据 (\d+)") == [str(i) for i in range(5)], out
    assert lines(out, r"消费者获取数据 (\d+)") == [str(i) for i in range(5)], out


def test_002_pipe():
    out = run("s002_pipe.py")
    assert lines(out, r"接收消息: (\w+)") == ["Hello", "World", "Bye"]


def test_003_isolation():
    assert run("s003_isolation.py") == "100\n"


def test_003_queue2():
    assert run("s003_queue2.py") == "2\n1\n2\n0\n"


def test_003_eval_queue():
    assert run("s003_eval_queue.py").split() == ["60", "60"]


def test_003_eval_pipe():
    assert run("s003_eval_pipe.py").split() == ["60", "60"]


def test_004_pipe_eof():
    assert run("s004_pipe_eof.py") == "0\n1\n2\n3\n4\nmaster proc end\n"


def test_004_queue_rw():
    out = run("s004_queue_rw.py")
    assert lines(out, r"get (\d+) from") == [str(i) for i in range(10)]


def test_004_semaphore():
    out = run("s004_semaphore.py")
    assert out.count("release sem") == 5 and out.count("acquire sem") == 5
