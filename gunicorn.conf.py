"""Gunicorn settings: the Heroku `web` process and the local production smoke, bench and load runs.

Environment: PORT (Heroku sets it), WEB_CONCURRENCY (worker processes), GUNICORN_THREADS
(threads per worker), GUNICORN_TIMEOUT. Command-line flags override this file
(`gunicorn speakerauth.wsgi -c gunicorn.conf.py --bind 127.0.0.1:8001`).
"""

import os

# Scoring is small numpy work per request; a BLAS thread pool per worker would only fight the
# other workers for the same cores. Must be set before the application (numpy) is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

wsgi_app = "speakerauth.wsgi:application"
bind = [f"0.0.0.0:{os.environ.get('PORT', '8000')}"]

# CPU-bound requests: about one process per core, each with a few threads so that the time a
# request spends waiting on Postgres or on a slow client is used by another request.
workers = int(os.environ.get("WEB_CONCURRENCY", str(max(2, os.cpu_count() or 1))))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Load Django, numpy and the engine once in the master; workers fork with it already imported
# (fast boot, shared pages). No database connection is opened at import time.
preload_app = True

# Heroku's router gives up after 30 s; stop the work before that.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "25"))
graceful_timeout = 20
keepalive = 5

# Several gunicorns may share one machine (CI, benchmarks); the control socket is unused.
control_socket_disable = True

accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
