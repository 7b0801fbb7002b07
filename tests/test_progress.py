"""What a running `lt-bench run` shows: one plain line per epoch off a terminal (pipes, nohup, SLURM
logs), a step-level bar with the loss and images/s on a terminal, and the record's path at the end."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

from lt_bench.cli import main
from lt_bench.config import resolve_config
from lt_bench.runner import RunPaths

COMMAND = ["run", "--method", "ce", "--dataset", "digits_lt", "--epochs", "2", "--threads", "1"]
EPOCH_LINE = re.compile(
    r"epoch (\d)/2  loss \d+\.\d{3}  train top1 \d+\.\d%  lr \d\.\d{4}  \d+ img/s  ETA \d+:\d\d:\d\d"
)


def test_off_a_terminal_each_epoch_is_one_plain_line_and_the_record_path_ends_the_run(tmp_path, capsys):
    assert main([*COMMAND, "--output", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    epochs = [EPOCH_LINE.fullmatch(line) for line in captured.err.splitlines()]
    assert [match[1] for match in epochs if match] == ["1", "2"], captured.err
    assert "\r" not in captured.err  # no bar redraws in a log file
    record = RunPaths.of(resolve_config("ce", "digits_lt", epochs=2, output=str(tmp_path))).record
    assert captured.out.splitlines()[-1] == f"record written to {record}"


def test_on_a_terminal_a_step_bar_shows_the_loss_and_images_per_second(tmp_path):
    terminal, child_end = pty.openpty()
    fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 24 rows, 120 columns
    command = [sys.executable, "-m", "lt_bench.cli", *COMMAND, "--output", str(tmp_path)]
    redraw_every_step = {**os.environ, "TQDM_MININTERVAL": "0"}  # tqdm's own setting: the run is short
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=child_end,
                               env=redraw_every_step)  # fmt: skip
    os.close(child_end)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    assert process.wait(timeout=300) == 0
    text = shown.decode()
    assert re.search(r"epoch 2/2: .*\| 14/14 .*loss \d+\.\d{3}  \d+ img/s", text), text
    assert not EPOCH_LINE.search(text)  # the plain lines are for logs only
