#!/usr/bin/env python3
"""Fidelity of int8 quantised matmuls for all-MiniLM-L6-v2, against the sentence-transformers
reference fixtures (../shared/fixtures). A plain numpy forward in three modes: f32, int8 weights
(per output channel), and int8 weights + per-token dynamic int8 activations (what a VNNI
kernel would compute). Needs numpy, scipy, safetensors, tokenizers; run from the repo root
after `router model fetch`: python3 scripts/int8_fidelity.py"""
import json, numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer
from scipy.special import erf
W=load_file('models/all-MiniLM-L6-v2/model.safetensors')
tok=Tokenizer.from_file('models/all-MiniLM-L6-v2/tokenizer.json'); tok.no_padding(); tok.enable_truncation(256)
def ln(x,p): m=x.mean(-1,keepdims=True); v=((x-m)**2).mean(-1,keepdims=True); return (x-m)/np.sqrt(v+1e-12)*W[p+'.weight']+W[p+'.bias']
def qw(w):  # per-output-channel symmetric int8 weights
    s=np.abs(w).max(1,keepdims=True)/127; return np.round(w/s).clip(-127,127)*s
def qa(x):  # per-row (token) dynamic symmetric int8 activations
    s=np.abs(x).max(1,keepdims=True)/127+1e-12; return np.round(x/s).clip(-127,127)*s
def lin(x,p,mode):
    w=W[p+'.weight']; b=W[p+'.bias']
    if mode=='int8': return qa(x)@qw(w).T+b
    if mode=='w8': return x@qw(w).T+b
    return x@w.T+b
def embed(text,mode):
    ids=np.array(tok.encode(text).ids); n=len(ids)
    x=W['embeddings.word_embeddings.weight'][ids]+W['embeddings.position_embeddings.weight'][:n]+W['embeddings.token_type_embeddings.weight'][0]
    x=ln(x,'embeddings.LayerNorm')
    for i in range(6):
        p=f'encoder.layer.{i}.'
        q=lin(x,p+'attention.self.query',mode).reshape(n,12,32).transpose(1,0,2)
        k=lin(x,p+'attention.self.key',mode).reshape(n,12,32).transpose(1,0,2)
        v=lin(x,p+'attention.self.value',mode).reshape(n,12,32).transpose(1,0,2)
        a=q@k.transpose(0,2,1)/np.sqrt(32); a=np.exp(a-a.max(-1,keepdims=True)); a/=a.sum(-1,keepdims=True)
        c=(a@v).transpose(1,0,2).reshape(n,384)
        x=ln(lin(c,p+'attention.output.dense',mode)+x,p+'attention.output.LayerNorm')
        h=lin(x,p+'intermediate.dense',mode); h=0.5*h*(1+erf(h/np.sqrt(2)))
        x=ln(lin(h,p+'output.dense',mode)+x,p+'output.LayerNorm')
    e=x.mean(0); return e/np.linalg.norm(e), n
rows=[json.loads(l) for l in open('../shared/fixtures/minilm-l6-v2.reference.jsonl')]
for mode in ['f32','w8','int8']:
    cs=[]
    for r in rows:
        e,n=embed(r['text'],mode); ref=np.array(r['embedding']); cs.append(float(e@ref/np.linalg.norm(ref)))
    print(mode,'min cosine',round(min(cs),6),'mean',round(float(np.mean(cs)),6))
