#!/usr/bin/env python3
"""Where a reward model errs on its held-out pairs, by which parts of the labeler's score the two answers
differ in: reads `ingot train rm`'s OUT/pairs-heldout-scored.jsonl (each held-out pair with the RM's margin
r_c - r_r) and recomputes the labeler's parts (train/src/align/task.rs: on task (a Write answer names its topic), tone, form, known-word
fraction) of both answers. Checks itself: every pair's chosen answer must score higher (else it says so).

Usage: scripts/rm-errors.py runs/pipeline/rm/pairs-heldout-scored.jsonl [CORPUS_DIR] [--show]
CORPUS_DIR defaults to ../shared/data/shakespeare, else data/shakespeare (the task's corpus); --show
prints every wrongly ordered pair.
"""
import collections, glob, json, os, re, sys

args = [a for a in sys.argv[1:] if a != '--show']
scored = args[0]
corpus = args[1] if len(args) > 1 else next(
    (d for d in ('../shared/data/shakespeare', 'data/shakespeare') if os.path.isdir(d)), None)
# the corpus as ingot reads it: *.txt in name order, concatenated; training lines are the first 90% of bytes
text = ''.join(open(f, encoding='utf-8').read() for f in sorted(glob.glob(os.path.join(corpus, '*.txt'))))
b = text.encode()
train_text = b[:len(b) * 9 // 10].decode('utf-8', 'ignore')

def usable(l):
    if not (20 <= len(l) <= 60 and l[:1].isascii() and l[:1].isupper()):
        return False
    if any(c.isdigit() or c in '[]_{}*@/&"' for c in l):
        return False
    return not any(len(w) >= 2 and w.isupper() for w in re.split(r'[^A-Za-z]', l))

def words(t):
    return [w for w in (x.strip("'").lower() for x in re.split(r"[^A-Za-z']", t)) if w]

counts = collections.Counter()
for l in train_text.splitlines():
    if usable(l.strip()):
        counts.update(words(l.strip()))
known = {w for w, c in counts.items() if c >= 2}
POS = set("""love loves loved joy sweet fair happy gentle good bright merry hope grace kind smile peace glad
dear blessed bless delight laugh true noble honest beauty beauteous heaven pleasure comfort friend friends
music golden mirth content wise warm thanks welcome""".split())
GRIM = set("""death dead die dies blood bloody grave kill killed hate murder woe curse cursed grief tears weep
slain sorrow foul fear poison hell despair wretched villain vile sin pain cruel sick plague wound ghost tomb
doom false traitor damned mad""".split())
TEMPLATES = ["Write a line about {}.", "Write one line about {}.", "Give me a line about {}.",
             "Say something about {}.", "A line on {}, please.", "Tell me of {}."]

def kind(p):
    if p.startswith('Continue: '):
        return 'Continue', p[len('Continue: '):]
    for t in TEMPLATES:
        pre, post = t.split('{}')
        if p.startswith(pre) and p.endswith(post):
            return 'Write', p[len(pre):len(p) - len(post)]
    raise ValueError(f'not a task prompt: {p!r}')

def parts(prompt, answer):
    k, x = kind(prompt)
    tr = answer.strip()
    ws = words(tr)
    on = (x in ws) if k == 'Write' else not tr.lower().startswith(x.lower())
    tone = max(-1, min(1, sum(w in POS for w in ws) - sum(w in GRIM for w in ws)))
    lo, hi = (20, 60) if k == 'Write' else (8, 50)
    form = ('\n' not in answer and lo <= len(tr) <= hi and bool(tr)
            and ((tr[-1].isascii() and tr[-1].isalpha()) or tr[-1] in ".,;:!?'"))
    known_frac = sum(w in known for w in ws) / len(ws) if ws else 0.0
    return {'on task': float(on), 'tone': float(tone), 'form': float(form), 'known words': known_frac}

rows = [json.loads(l) for l in open(scored)]
total, wrong, bad = collections.Counter(), collections.Counter(), 0
for r in rows:
    c, j = parts(r['prompt'], r['chosen']), parts(r['prompt'], r['rejected'])
    bad += sum(c.values()) <= sum(j.values())
    diff = [k for k in c if k != 'known words' and c[k] != j[k]] or ['known words']
    key = f"{' + '.join(diff)} ({kind(r['prompt'])[0]})"
    total[key] += 1
    if r['margin'] <= 0:
        wrong[key] += 1
        if '--show' in sys.argv:
            print(f"{r['margin']:+.2f} {r['prompt']!r}: {r['chosen']!r} {c} over {r['rejected']!r} {j}")
n_wrong = sum(wrong.values())
print(f'{len(rows)} held-out pairs, accuracy {1 - n_wrong / len(rows):.4f}'
      + (f'; {bad} pairs the labeler here does not order as the file does!' if bad else ''))
print('| pairs differing in | pairs | RM accuracy |\n| --- | ---: | ---: |')
for k, n in total.most_common():
    print(f'| {k} | {n} | {1 - wrong[k] / n:.3f} |')
