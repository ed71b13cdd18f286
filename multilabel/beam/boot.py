"""A Beam SDK worker's boot program, as Beam's worker container runs one, in Python.

An external worker pool (`worker_pool_main --container_executable`) starts this once per
SDK worker with the container contract's flags (--id, --provision_endpoint,
--artifact_endpoint, --control_endpoint, --logging_endpoint). Like the Go boot program
in Beam's SDK images, it asks the runner for the job's pipeline options and staged
files, installs the staged packages (`--extra_package` wheels, the `--setup_file`
sdist `workflow.tar.gz`) into a folder of its own, and then runs the SDK harness with
that folder on its path. So the workers get the project's code the way a cluster's
workers do: from the job, never from the launching machine's checkout.

It imports only Beam and the standard library: the project is not installed yet when
it starts. Installs are kept by the staged files' digests under --cache, so workers
of the same job (and later jobs with the same packages) install once.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import grpc
from apache_beam.portability import common_urns
from apache_beam.portability.api import (beam_artifact_api_pb2, beam_artifact_api_pb2_grpc,
                                         beam_provision_api_pb2, beam_provision_api_pb2_grpc,
                                         beam_runner_api_pb2)
from google.protobuf import json_format

# Names the stager gives the files it stages (apache_beam.runners.portability.stager).
EXTRA_PACKAGES_FILE = "extra_packages.txt"
WORKFLOW_TARBALL = "workflow.tar.gz"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__)
    for name in ("id", "provision_endpoint", "artifact_endpoint", "control_endpoint",
                 "logging_endpoint"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "multilabel-boot"),
                   help="where staged packages are installed, one folder per set of them")
    return p.parse_known_args(argv)[0]


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    metadata = [("worker_id", args.id)]
    provision = beam_provision_api_pb2_grpc.ProvisionServiceStub(
        grpc.insecure_channel(args.provision_endpoint))
    info = provision.GetProvisionInfo(beam_provision_api_pb2.GetProvisionInfoRequest(),
                                      metadata=metadata).info
    retrieval = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(
        grpc.insecure_channel(args.artifact_endpoint))
    site = install_staged(retrieval, info.dependencies, args.cache, metadata)
    env = dict(os.environ,
               WORKER_ID=args.id,
               PIPELINE_OPTIONS=json_format.MessageToJson(info.pipeline_options),
               CONTROL_API_SERVICE_DESCRIPTOR=f'url: "{args.control_endpoint}"',
               LOGGING_API_SERVICE_DESCRIPTOR=f'url: "{args.logging_endpoint}"',
               # In the cache folder, so that it goes when the cluster's folder goes.
               SEMI_PERSISTENT_DIRECTORY=tempfile.mkdtemp(prefix=f".worker-{args.id}-",
                                                          dir=_made(args.cache)))
    if site:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [site, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"]
    os.dup2(2, 1)  # the pool pipes stdout and never reads it: a full pipe would block us
    os.execve(sys.executable, command, env)


def _made(folder):
    os.makedirs(folder, exist_ok=True)
    return folder


def install_staged(retrieval, dependencies, cache, metadata=()):
    """Install the job's staged packages into a folder and return it (None if none).

    The folder is named by the staged files' contents, so workers and later jobs
    shipping the same packages install once; it is built in a temporary folder and
    renamed, so a worker never sees another's half install.
    """
    files = {_staged_name(d): d for d in dependencies}
    wanted = []
    if EXTRA_PACKAGES_FILE in files:
        listed = _fetch(retrieval, files[EXTRA_PACKAGES_FILE], metadata).decode()
        wanted += [name.strip() for name in listed.splitlines() if name.strip()]
    if WORKFLOW_TARBALL in files:
        wanted.append(WORKFLOW_TARBALL)
    if not wanted:
        return None
    missing = [name for name in wanted if name not in files]
    if missing:
        raise RuntimeError(f"the job lists packages it did not stage: {', '.join(missing)}")
    contents = {name: _fetch(retrieval, files[name], metadata) for name in wanted}
    digest = hashlib.sha256()
    for name in wanted:
        digest.update(f"{name}\0{hashlib.sha256(contents[name]).hexdigest()}\0".encode())
    target = os.path.join(cache, digest.hexdigest()[:16])
    if os.path.isdir(target):
        return target
    os.makedirs(cache, exist_ok=True)
    work = tempfile.mkdtemp(dir=cache, prefix=".install-")
    try:
        paths = []
        for name in wanted:
            path = os.path.join(work, "staged", name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(contents[name])
            paths.append(path)
        # No index and no build isolation: the worker's image has every dependency
        # (the pinned requirements); only the project's own code arrives with the job.
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--no-index", "--no-build-isolation", "--target",
                        os.path.join(work, "site"), *paths], check=True,
                       stdout=sys.stderr)
        try:
            os.rename(os.path.join(work, "site"), target)
        except OSError:
            if not os.path.isdir(target):  # else another worker installed it first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _staged_name(artifact):
    if artifact.role_urn != common_urns.artifact_roles.STAGING_TO.urn:
        return None
    return beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(
        artifact.role_payload).staged_name


def _fetch(retrieval, artifact, metadata=()):
    request = beam_artifact_api_pb2.GetArtifactRequest(artifact=artifact)
    return b"".join(chunk.data for chunk in retrieval.GetArtifact(request, metadata=metadata))


if __name__ == "__main__":
    main()
