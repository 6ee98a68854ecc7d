"""pagedom.py — the elements of a page that cdp.py's dom: step saved, for the page tests
of tests/e2e/serve.sh: a list of (tag, attributes) in document order."""
import html.parser


class _Elements(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.els = []

    def handle_starttag(self, tag, attrs):
        self.els.append((tag, dict(attrs)))


def elements(path):
    p = _Elements()
    with open(path) as f:
        p.feed(f.read())
    return p.els
