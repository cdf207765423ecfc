# One image for the broker and the operator: `odradek broker ...` and `odradek operator ...`
# (the Cluster resource's pods run the first, the chart's Deployment the second).
# Build: docker build -t odradek:0.1.0 .   (docs/operations.md, "The container image")

ARG PYTHON_VERSION=3.11

# -- build: a wheel of odradek and of every dependency, compiled where there is no wheel --
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY odradek ./odradek
# The `operator` extra brings kopf and the Kubernetes client; the broker needs neither,
# but one image serves both.
RUN python -m venv /opt/odradek \
    && /opt/odradek/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/odradek/bin/pip install --no-cache-dir '.[operator]' \
    && find /opt/odradek -name '__pycache__' -prune -exec rm -rf {} + \
    && /opt/odradek/bin/python -m compileall -q /opt/odradek/lib

# -- run: the virtual environment alone, no compiler, a user without privileges ----------
FROM python:${PYTHON_VERSION}-slim-bookworm
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="odradek" \
      org.opencontainers.image.description="Odradek broker and Kubernetes operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# 10001 is the uid the operator's broker pods and the chart's operator pod run as
# (odradek/operator/cluster.py BROKER_UID; fsGroup makes the data volume theirs).
RUN groupadd --system --gid 10001 odradek \
    && useradd --system --uid 10001 --gid odradek --home-dir /var/lib/odradek \
       --shell /usr/sbin/nologin odradek \
    && mkdir -p /var/lib/odradek \
    && chown odradek:odradek /var/lib/odradek
COPY --from=build /opt/odradek /opt/odradek
ENV PATH=/opt/odradek/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/odradek
VOLUME ["/var/lib/odradek"]
# gRPC, and the broker's metrics (gRPC port + 1000).
EXPOSE 9092 10092
ENTRYPOINT ["odradek"]
CMD ["broker", "--host", "0.0.0.0", "--data-dir", "/var/lib/odradek/data"]
