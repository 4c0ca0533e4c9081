"""Gunicorn settings: the Heroku `web` process and the local production smoke, bench and load runs.

Environment: PORT (Heroku sets it), WEB_CONCURRENCY (worker processes), GUNICORN_THREADS
(threads per worker), GUNICORN_TIMEOUT, GUNICORN_KEEPALIVE (seconds; 0, the default, closes each
connection after its response), GUNICORN_ACCESS_LOG (a file, or - for the log; none by default).
Command-line flags override this file
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
# No keep-alive: a gthread worker accepts every connection it can, and a kept-alive connection
# stays with that worker, so a few busy clients (or a proxy's pooled connections) all land on one
# process and its GIL while the others idle (seen in a `bench.http --quick` run, 2 workers, c=8:
# one worker at 110 % CPU, the other at 0, 34 req/s; how connections split is luck). Closed after
# each response, the next request goes to whichever worker accepts first, usually an idle one
# (58 req/s, both busy). GUNICORN_KEEPALIVE=5 restores it, e.g. behind a proxy that spreads its
# connections over the workers itself.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "0"))

# Several gunicorns may share one machine (CI, benchmarks); the control socket is unused.
control_socket_disable = True

accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# The app's X-Request-ID (speakerauth/request_id.py) on each line, as in its own log lines.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request=%({x-request-id}o)s'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
