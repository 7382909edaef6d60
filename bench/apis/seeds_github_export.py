"""The seeds' GitHubClient (requests.Session + a page loop until an empty page), doing their
"Sync GitHub Issues" exercise: every open issue of a repository to a CSV file.

usage: seeds_github_export.py BASE_URL OWNER/REPO OUT.csv
"""
import csv
import sys

import requests


class GitHubClient:
    def __init__(self, base_url, token):
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers.update({
            "Authorization": f"token {token}",
            "Accept": "application/vnd.github.v3+json",
        })

    def get_issues(self, owner, repo):
        issues = []
        page = 1
        while True:
            response = self.session.get(
                f"{self.base_url}/repos/{owner}/{repo}/issues",
                params={"state": "open", "page": page, "per_page": 100},
                timeout=30,
            )
            response.raise_for_status()
            data = response.json()
            if not data:
                break
            # pull requests are issues too in this list
            issues.extend(i for i in data if "pull_request" not in i)
            page += 1
        return issues


def main():
    base, repo, out = sys.argv[1], sys.argv[2], sys.argv[3]
    owner, name = repo.split("/")
    issues = GitHubClient(base, "ghp_bench").get_issues(owner, name)
    fields = ["number", "title", "state", "user", "labels", "assignees", "comments",
              "created_at", "updated_at", "closed_at", "url"]
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for i in issues:
            w.writerow({
                "number": i["number"], "title": i["title"], "state": i["state"],
                "user": i["user"]["login"],
                "labels": ",".join(l["name"] for l in i["labels"]),
                "assignees": ",".join(a["login"] for a in i["assignees"]),
                "comments": i["comments"], "created_at": i["created_at"],
                "updated_at": i["updated_at"], "closed_at": i["closed_at"] or "",
                "url": i["html_url"],
            })


if __name__ == "__main__":
    main()
