"""One small GET, the way the seeds write it."""
import sys

import requests

response = requests.get(sys.argv[1], timeout=10)
response.raise_for_status()
print(response.json())
