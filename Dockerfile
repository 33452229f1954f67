# hookline: the same service `make run` starts, as a container.
#
#   podman build -t hookline .        # or: docker build -t hookline .
#
# BASE is any Debian-based image with Python 3.11+ as `python3` (and its venv module).
# The default is the official slim image; `make image-test` builds from a Debian base
# made locally with debootstrap (scripts/build_base_image.sh) instead.
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/hookline/bin:$PATH \
    HOOKLINE_CONFIG=/etc/hookline/hookline.toml \
    HOOKLINE_DEMO_OUTBOX=/var/lib/hookline/demo-outbox

# A fixed uid/gid, so a volume or a mounted config can be owned/readable by it on the host.
RUN groupadd --system --gid 10001 hookline \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/hookline \
       --no-create-home --shell /usr/sbin/nologin hookline \
    && mkdir -p /var/lib/hookline /etc/hookline \
    && chown 10001:10001 /var/lib/hookline

# The app in its own venv; the source tree is only needed to build it.
WORKDIR /tmp/hookline-src
COPY pyproject.toml README.md ./
COPY app ./app
COPY providers ./providers
RUN python3 -m venv /opt/hookline \
    && /opt/hookline/bin/pip install --no-cache-dir --disable-pip-version-check . \
    && cd / && rm -rf /tmp/hookline-src

# The working directory is where [pipeline] handlers are imported from: mount or COPY your
# handler modules here (the demo handlers of hookline.example.toml are included).
WORKDIR /srv/hookline
COPY examples/handlers.py ./examples/handlers.py
COPY examples/__init__.py ./examples/__init__.py
COPY hookline.example.toml ./

# Everything hookline writes (the SQLite database) goes to this volume; the root file
# system can be read-only (`--read-only`). Point [storage] url at
# sqlite:////var/lib/hookline/hookline.db, or at PostgreSQL.
VOLUME /var/lib/hookline
USER 10001:10001
EXPOSE 8400
STOPSIGNAL SIGTERM
# Mount your hookline.toml (secrets written as ${VARS}, passed with -e) at
# /etc/hookline/hookline.toml. `podman run IMAGE worker` / `IMAGE migrate` run the other
# commands.
ENTRYPOINT ["hookline"]
CMD ["serve", "--host", "0.0.0.0"]
