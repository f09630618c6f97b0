# One image for every EVCharging service; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EV_DATA_DIR=/data

RUN useradd --system --uid 10001 --home-dir /data --create-home ev

WORKDIR /src
COPY pyproject.toml README.md ./
COPY common ./common
COPY demo ./demo
COPY registry ./registry
COPY central ./central
COPY cp_engine ./cp_engine
COPY cp_monitor ./cp_monitor
COPY driver ./driver
COPY weather ./weather
COPY web_ui ./web_ui
COPY ocpp_sim ./ocpp_sim
RUN pip install '.[speed]' && rm -rf /src

WORKDIR /data
USER ev
VOLUME ["/data"]
# No default command: each compose service names its own (ev-central, ev-registry, ...).
CMD ["evcharging", "--help"]
