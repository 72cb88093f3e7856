# One image for the api and the worker (same entry points as the CLI: python -m service.api / service.worker).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY analysis ./analysis
COPY bench ./bench
COPY loadtests ./loadtests
RUN pip install . && useradd --create-home --uid 10001 app
USER app
EXPOSE 8000
CMD ["python", "-m", "service.api"]
