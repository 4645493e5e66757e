"""Nothing is fetched from the network at run time: the whole workflow runs with the network cut.

A ``sitecustomize`` module on the run's PYTHONPATH (inherited by every job) makes every Internet
socket (IPv4/IPv6) and every host name lookup fail and records the attempt; local (Unix) sockets
stay, as snakemake and its job processes use them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_workflow import REPO, write_stack

NO_NETWORK = '''
import os, socket

_LOG = os.environ["CYTOPAINT_TEST_NETLOG"]
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _refuse(what):
    with open(_LOG, "a") as fh:
        fh.write(f"{os.getpid()} {what}\\n")
    raise OSError(101, f"network is cut for this test: {what}")


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse(f"connect {address!r}")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse(f"connect_ex {address!r}")
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    _refuse(f"getaddrinfo {host!r}")


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''


def test_the_workflow_runs_with_the_network_cut(tmp_path: Path) -> None:
    write_stack(tmp_path, sections=("s0",))
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(NO_NETWORK)
    log = tmp_path / "network.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
           "CYTOPAINT_TEST_NETLOG": str(log)}
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('example.org', 80), 1)"],
                           env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "network is cut" in probe.stderr  # the hook is in force
    log.unlink()
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
                          str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "2"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "results" / "sections" / "s0" / "manifest.json").is_file()
    assert (tmp_path / "results" / "qc" / "index.html").is_file()
    assert not log.exists(), log.read_text()  # no process of the run tried to reach the network
