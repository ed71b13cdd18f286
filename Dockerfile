# The Beam workers' image: Beam's own Python SDK image (its boot program is the entry
# point) plus the pinned requirements and this project, for
# `--sdk_container_image` (Dataflow) or `--environment_type DOCKER --environment_config`
# (Flink, Spark). See docs/beam.md. Not built on the project's machines (no registry).
#
#   docker build -t REGISTRY/multilabel-beam:1.0.0 .
#   docker push REGISTRY/multilabel-beam:1.0.0
FROM apache/beam_python3.11_sdk:2.71.0

WORKDIR /opt/multilabel
# The requirements first: a code change then rebuilds only the last layer.
COPY requirements.txt requirements-beam.txt ./
RUN pip install --no-cache-dir -r requirements-beam.txt
COPY pyproject.toml README.md ./
COPY multilabel ./multilabel
RUN pip install --no-cache-dir --no-deps . && rm -rf /opt/multilabel
WORKDIR /
