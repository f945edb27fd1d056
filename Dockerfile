# A container for scheduled reports: `research report serve` runs each report's slots as they fall due.
#   docker build -t durable-research .
#   docker run -d -v research-data:/data -v "$PWD/research.toml:/data/research.toml:ro" \
#       -e OPENAI_API_KEY durable-research
# The cache (every paid step) and the reports live on the /data volume, so a restarted or replaced
# container resumes an interrupted slot and never pays again for what an earlier one completed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RESEARCH_CACHE_DIR=/data/cache \
    RESEARCH_REPORT_DIR=/data/reports \
    RESEARCH_CONFIG=/data/research.toml

WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
COPY pipelines ./pipelines
COPY prompts ./prompts
RUN pip install --no-cache-dir . && useradd --create-home --uid 10001 research \
    && mkdir -p /data && chown research /data

USER research
WORKDIR /data
VOLUME ["/data"]
# serve exits 0 on SIGTERM between runs; a run interrupted by `docker stop` resumes at the next start.
STOPSIGNAL SIGTERM
CMD ["research", "report", "serve"]
