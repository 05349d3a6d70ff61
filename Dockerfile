# One image for every Python service of docker-compose.yml (api, worker, beat, flower, simulator).
# Python 3.14 (3.14.10, as Debian unstable packages it in 2026-12) on Debian 13: supported lines, patched, pinned.
FROM python:3.14.10-slim-trixie

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Metadata first, then the packages: `pip install .` needs both; constraints.txt holds the versions the suite
# passed with.
COPY pyproject.toml README.md constraints.txt ./
COPY config ./config
COPY api ./api
COPY worker ./worker
COPY simulator ./simulator
COPY cli ./cli
RUN pip install -c constraints.txt . \
    && useradd --create-home --uid 10001 imsrep \
    && mkdir /data && chown imsrep /data

# Never root; /data holds beat's schedule and Flower's state (named volumes in docker-compose.yml).
USER imsrep
EXPOSE 8000 5555 8780
CMD ["python", "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
