"""Shared test settings.

AppTest runs pages in-process and cannot run custom components, so the app tests see the
server-drawn strip (NLVIZ_VIEW=server); the hover view is tested in Chromium (tests/browser/),
whose server is started with the hover view on.
"""

import os

os.environ.setdefault("NLVIZ_VIEW", "server")
