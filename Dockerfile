# The pokazy worker image: `docker build -t pokazy .`, then `docker run pokazy worker`
# (docker-compose.yml runs it next to Kafka and ClickHouse).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The pinned runtime dependencies first, read from pyproject.toml, so that a code change does not
# reinstall them. All of them have manylinux wheels: no compiler is needed.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --requirement /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself. Editable, because the code finds the repository's schemas/ (Avro and
# ClickHouse DDL) next to the streams/ package, which a regular install into site-packages would
# leave behind. The code stays owned by root: the worker's user cannot change it.
COPY . .
RUN pip install --no-deps --editable . \
    && useradd --system --user-group --uid 10001 --home-dir /var/lib/pokazy \
        --shell /usr/sbin/nologin pokazy \
    && install --directory --owner=pokazy --group=pokazy --mode=0750 /var/lib/pokazy

# In a container the HTTP endpoint (health, metrics, read-only SQL) must listen on every
# interface to be reachable through a published port; publish it on 127.0.0.1 only.
ENV POKAZY_WEB_BIND=0.0.0.0 \
    POKAZY_WEB_PORT=6066 \
    POKAZY_DATA_DIR=/var/lib/pokazy
EXPOSE 6066
VOLUME ["/var/lib/pokazy"]

USER pokazy
WORKDIR /var/lib/pokazy
ENTRYPOINT ["pokazy"]
CMD ["worker"]
