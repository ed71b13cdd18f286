"""A Beam cluster on this machine: a job server and workers in processes of their own.

`LocalCluster` starts `cluster_service.py` (a job server and a worker pool, on
127.0.0.1) in a new process group, from a scratch folder and with no project code on
its path, and gives the Beam flags that send a job to it: Beam's portable runner, as
for a Flink or Spark job server, with the pool's processes as its workers. Each worker
boots as a cluster's does (boot.py): it installs the packages the job staged
(`--extra_package`, `--setup_file`) and only then runs the job's code. Leaving the
`with` block stops the services and every worker, also after an error or Ctrl-C.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from multilabel.base.errors import UserError

_HERE = os.path.dirname(os.path.abspath(__file__))
START_TIMEOUT_S = 60


class LocalCluster:
    """`with LocalCluster(workers=2) as cluster: ... cluster.beam_flags() ...`"""

    def __init__(self, workers=2, python=sys.executable):
        self.workers = workers
        self.python = python
        self.addresses = None
        self.folder = None
        self._pool = None

    def __enter__(self):
        self.folder = tempfile.mkdtemp(prefix="multilabel-cluster-")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def _start(self):
        boot = os.path.join(self.folder, "boot")
        with open(boot, "w") as f:  # the pool starts workers with one executable, no flags
            f.write(f"#!/bin/sh\nexec {shlex.quote(self.python)} "
                    f"{shlex.quote(os.path.join(_HERE, 'boot.py'))} "
                    f"--cache {shlex.quote(os.path.join(self.folder, 'installs'))} \"$@\"\n")
        os.chmod(boot, 0o755)
        address_file = os.path.join(self.folder, "addresses.json")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.log = os.path.join(self.folder, "pool.log")
        with open(self.log, "wb") as log:
            self._pool = subprocess.Popen(
                [self.python, os.path.join(_HERE, "cluster_service.py"),
                 "--address_file", address_file, "--boot", boot],
                cwd=self.folder, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not os.path.exists(address_file):
            if self._pool.poll() is not None or time.monotonic() > deadline:
                raise UserError(f"the cluster's services did not start; their log: {self.log}")
            time.sleep(0.1)
        with open(address_file) as f:
            self.addresses = json.load(f)

    def beam_flags(self):
        """The runner flags that send a job to this cluster's workers."""
        return ["--runner", "PortableRunner", "--job_endpoint", self.addresses["job_endpoint"],
                "--environment_type", "EXTERNAL",
                "--environment_config", self.addresses["worker_pool"],
                "--sdk_worker_parallelism", str(self.workers)]

    def stop(self):
        """Stop the pool and its workers (their process group), then remove the folder."""
        if self._pool is not None and self._pool.poll() is None:
            _signal_group(self._pool.pid, signal.SIGTERM)
            try:
                self._pool.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        if self._pool is not None:
            _signal_group(self._pool.pid, signal.SIGKILL)  # workers left by a killed pool
            self._pool.wait()
            self._pool = None
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def _signal_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
