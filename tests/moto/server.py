"""moto's S3 server (`python3 -m moto.server`) with conditional writes made atomic, as they are on S3.

moto 5.2 checks `If-None-Match: *` (and `If-Match`) on PutObject and CompleteMultipartUpload, then writes, with no
lock between the two, on a threaded HTTP server: two concurrent conditional PUTs of one new key can both succeed,
the second overwriting the first. Eight threads putting one key at once got two winners on 4 keys of 200 here on a
loaded machine (none on an idle one: the window is short). On S3 exactly one wins and the others get 412. A Delta
commit is such a put (`_delta_log/<v>.json`, put-if-absent), so with plain moto two writers could both "win" a
version and one commit would be lost with no error: that is what
`delta_conformance::s3_two_checkpoints_append_concurrently` once saw in CI (events missing, none twice, every run
exit 0). Here every conditional write runs under one lock (check and write together); unconditional requests are
untouched. `delta_conformance::s3_conditional_puts_have_one_winner` checks it, on keys written slowly on purpose
(below).

Usage: python3 server.py [moto.server arguments]
"""

import functools
import sys
import threading
import time

from moto.s3.models import S3Backend
from moto.s3.responses import S3Response
from moto.server import main

_CONDITIONAL = threading.Lock()


def _atomic_when_conditional(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self.headers.get("If-None-Match") or self.headers.get("If-Match"):
            with _CONDITIONAL:
                return method(self, *args, **kwargs)
        return method(self, *args, **kwargs)

    return wrapper


# PutObject, and POST on a key (CompleteMultipartUpload among others).
for _name in ("put_object", "_key_response_post"):
    setattr(S3Response, _name, _atomic_when_conditional(getattr(S3Response, _name)))

_backend_put = S3Backend.put_object


def _put_race_key_slowly(self, bucket_name, key_name, *args, **kwargs):
    """Keys below `race*` (the self-check's) are written 20 ms after moto's check: inside the lock that changes
    nothing, without it racing conditional puts overlap every time, so the self-check fails whatever the
    machine's load (on an idle machine plain moto's window is too short to show in 200 races)."""
    if key_name.startswith("race"):
        time.sleep(0.02)
    return _backend_put(self, bucket_name, key_name, *args, **kwargs)


S3Backend.put_object = _put_race_key_slowly

if __name__ == "__main__":
    main(sys.argv[1:])
