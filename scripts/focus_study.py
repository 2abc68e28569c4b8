"""How the localizer's focus measure separates sharp frames from defocused ones.

    .venv/bin/python scripts/focus_study.py target/release/endface OUT.json

Every third test frame of data/synth-val and data/synth-val2 (rendered by README's commands),
as rendered and blurred by a further 1, 2, 3 and 4 µm (Gaussian sigma, at each frame's
labelled µm/px), plus the real photographs in ../shared/reference-images (for looking only:
their focus values, never a test), located with `endface locate`; prints percentiles
(0/5/50/95/100 %) of the focus measure per blur. Needs OpenCV (the training venv has it).
"""
import cv2, json, subprocess, sys, os, numpy as np, glob
from concurrent.futures import ThreadPoolExecutor
BIN=sys.argv[1]
root=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'data')
REF=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'reference-images')
import tempfile
tmp=tempfile.mkdtemp()
jobs=[]
for ds in ['synth-val','synth-val2']:
    for i,l in enumerate(open(f'{root}/{ds}/labels.jsonl')):
        d=json.loads(l)
        if not d['image'].startswith('test/') or i%3: continue
        jobs.append((f'{root}/{ds}/{d["image"]}', d['um_per_px_x'], d['um_per_px_x']/d['um_per_px_y'], d.get('double_edge'), d['blur_sigma_px']))
for f in glob.glob(os.path.join(REF, '*.jpg')):
    jobs.append((f, None, 1.093 if 'endface' in f else 1.0, 'ref', 0))
def run(j):
    f,u,a,de,b=j; out=[]
    img=cv2.imread(f, cv2.IMREAD_GRAYSCALE)
    for extra_um in [0,1,2,3,4]:
        if extra_um:
            s=extra_um/(u or 0.43)
            im=cv2.GaussianBlur(img,(0,0),s)
        else: im=img
        p=os.path.join(tmp, f'{abs(hash(f))}_{extra_um}.png'); cv2.imwrite(p,im)
        cmd=[BIN,'-q','locate','--json','--aspect',str(a)]+(['--um-per-px',str(u)] if u else [])+[p]
        r=subprocess.run(cmd,capture_output=True,text=True)
        try: fo=json.loads(r.stdout.strip())['focus']
        except Exception: fo=None
        out.append(fo); os.remove(p)
    return (f[-30:], de, b, out)
with ThreadPoolExecutor(2) as ex: res=list(ex.map(run,jobs))
json.dump(res,open(sys.argv[2],'w'))
for extra in range(5):
    vals=[r[3][extra] for r in res if r[1]!='ref' and r[3][extra] is not None]
    de=[r[3][extra] for r in res if r[1] is True and r[3][extra] is not None]
    ref=[r[3][extra] for r in res if r[1]=='ref' and r[3][extra] is not None]
    nf=sum(1 for r in res if r[3][extra] is None)
    q=lambda v: ' '.join('%.3f'%x for x in np.percentile(v,[0,5,50,95,100])) if v else '-'
    print(f'+{extra} µm blur: synth [{q(vals)}] double-edge [{q(de)}] ref [{q(ref)}] not found {nf}')
