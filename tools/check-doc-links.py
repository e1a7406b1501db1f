#!/usr/bin/env python3
"""Check that every documentation reference in the repository resolves.

Looks at Markdown links ([text](path#anchor)) in *.md files and at
citations of the form docs/<name>.md or docs/<name>.md#<anchor> anywhere in the
tracked sources, and reports each one whose file does not exist or whose
anchor is not a heading of that file (GitHub's anchor rules: lower case,
punctuation dropped, spaces to hyphens).  Exit status 1 when any is broken.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_DIRS = {'.git', 'build', 'results', 'tmp_check', 'log', '__pycache__'}
CITATION = re.compile(r'\b((?:docs|bench|test|tools|sql|src|cuda)/[\w./-]+\.md)(#[\w-]+)?')
MD_LINK = re.compile(r'\]\(([^)\s]+)\)')
TEXT_EXT = ('.md', '.c', '.h', '.cu', '.sql', '.sh', '.py', '.pl', '.mk', '.txt', '.json')


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r'[^\w\- ]', '', s)
    return s.replace(' ', '-')


def anchors(path, cache={}):
    if path not in cache:
        found = set()
        counts = {}
        in_code = False
        with open(path, encoding='utf-8') as f:
            for line in f:
                if line.startswith('```'):
                    in_code = not in_code
                m = None if in_code else re.match(r'#+\s+(.*)', line)
                if m:
                    base = slug(m.group(1))
                    n = counts.get(base, 0)
                    found.add(base if n == 0 else '%s-%d' % (base, n))
                    counts[base] = n + 1
                for a in re.findall(r'<a (?:name|id)="([^"]+)"', line):
                    found.add(a)
        cache[path] = found
    return cache[path]


checked = [0]


def check(ref_file, target, anchor, problems, where):
    checked[0] += 1
    path = os.path.normpath(os.path.join(ROOT, target))
    if not os.path.exists(path):
        problems.append('%s: %s does not exist' % (where, target))
    elif anchor and path.endswith('.md') and anchor not in anchors(path):
        problems.append('%s: %s has no section #%s' % (where, target, anchor))


def tracked_files():
    """git's list of files; a walk of the tree where git is not usable."""
    try:
        out = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
        if out:
            return out
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for top, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith('corpus')]
        files += [os.path.relpath(os.path.join(top, n), ROOT) for n in names]
    return files


def main():
    files = tracked_files()
    problems = []
    for rel in files:
        if not rel.endswith(TEXT_EXT) or not os.path.exists(os.path.join(ROOT, rel)):
            continue
        try:
            text = open(os.path.join(ROOT, rel), encoding='utf-8').read()
        except UnicodeDecodeError:
            continue
        for lineno, line in enumerate(text.split('\n'), 1):
            where = '%s:%d' % (rel, lineno)
            for m in CITATION.finditer(line):
                check(rel, m.group(1), (m.group(2) or '')[1:], problems, where)
            if rel.endswith('.md'):
                for m in MD_LINK.finditer(line):
                    link = m.group(1)
                    if re.match(r'[a-z]+:', link):
                        continue
                    target, _, anchor = link.partition('#')
                    if not target:
                        target = rel
                    else:
                        target = os.path.join(os.path.dirname(rel), target)
                    check(rel, target, anchor, problems, where)
    for p in problems:
        print(p)
    print('doc references: %d checked, %d broken' % (checked[0], len(problems)))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
