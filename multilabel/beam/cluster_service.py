"""A Beam cluster's services on this machine: a job server and an external worker pool.

    python multilabel/beam/cluster_service.py --address_file F --boot EXECUTABLE

Started by `cluster.LocalCluster`, with no project code on its path: it imports only
Beam. It plays the part a Flink or Spark job server plays, on 127.0.0.1 only:

  * the job service takes jobs from Beam's `PortableRunner` (`--job_endpoint`) with
    the files they stage (`--extra_package`, `--setup_file`), and runs each with Beam's
    portable FnApiRunner, its stages split among `--sdk_worker_parallelism` workers;
  * the worker pool starts each worker as a separate process through the boot program
    `--boot` (boot.py), which installs the job's staged packages before running it.

Beam's own `local_job_service_main` runs every job on one worker whatever the options
ask, and its `worker_pool_main` listens on every interface and starts workers as the
`python` first on the PATH; these are the two things done differently here. The
addresses are written to --address_file (JSON) once both listen; SIGTERM stops both
and every worker.
"""

import argparse
import json
import os
import signal
import sys
import threading

import grpc
from apache_beam.options.pipeline_options import PortableOptions
from apache_beam.portability.api import beam_fn_api_pb2_grpc
from apache_beam.runners.portability import local_job_service
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.worker.worker_pool_main import (BeamFnExternalWorkerPoolServicer,
                                                         kill_process_gracefully)
from apache_beam.utils import thread_pool_executor

HOST = "127.0.0.1"  # a pool runs whatever code a job sends it: never reachable from outside


class _ParallelJob(local_job_service.BeamJob):
    """A job whose stages are split among `sdk_worker_parallelism` workers."""

    def _invoke_runner(self):
        self.set_state(local_job_service.beam_job_api_pb2.JobState.RUNNING)
        options = self.pipeline_options()
        runner = fn_runner.FnApiRunner(provision_info=self._provision_info)
        # FnApiRunner reads its worker count from DirectOptions only in run_pipeline,
        # which a job server does not call; run_via_runner_api keeps the count it has.
        runner._num_workers = max(1, int(options.view_as(PortableOptions).sdk_worker_parallelism
                                         or 1))
        return runner.run_via_runner_api(self._pipeline_proto, options)


class _LoopbackJobServicer(local_job_service.LocalJobServicer):
    def get_service_address(self):
        return HOST


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address_file", required=True)
    p.add_argument("--boot", required=True, help="the workers' boot program (an executable)")
    args = p.parse_args(argv)

    jobs = _LoopbackJobServicer(beam_job_type=_ParallelJob)
    job_port = jobs.start_grpc_server()
    pool = BeamFnExternalWorkerPoolServicer(use_process=True, container_executable=args.boot)
    pool_server = grpc.server(thread_pool_executor.shared_unbounded_instance())
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, pool_server)
    pool_port = pool_server.add_insecure_port(f"{HOST}:0")
    pool_server.start()

    with open(args.address_file + ".tmp", "w") as f:
        json.dump({"job_endpoint": f"{HOST}:{job_port}", "worker_pool": f"{HOST}:{pool_port}"}, f)
    os.replace(args.address_file + ".tmp", args.address_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    pool_server.stop(0)
    for worker in list(pool._worker_processes.values()):
        kill_process_gracefully(worker, timeout=5)
    jobs.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
