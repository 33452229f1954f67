# hookline: the same service `make run` starts, as a container.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv/hookline

COPY pyproject.toml README.md ./
COPY app ./app
COPY providers ./providers
COPY examples ./examples
COPY hookline.example.toml ./
RUN pip install --no-cache-dir . \
    && useradd --system --home /srv/hookline hookline \
    && mkdir -p /var/lib/hookline && chown hookline /var/lib/hookline

USER hookline
EXPOSE 8400
# Mount your hookline.toml (secrets as ${VARS}) at /etc/hookline/hookline.toml;
# point [storage] url at /var/lib/hookline (a volume) or at PostgreSQL.
ENV HOOKLINE_CONFIG=/etc/hookline/hookline.toml
STOPSIGNAL SIGTERM
CMD ["hookline", "serve", "--host", "0.0.0.0"]
