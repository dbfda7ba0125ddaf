"""The tested set of Pachtray's JupyterLab environment: what to install, and every version pinned.

jupyterlab-pachyderm 2.8's panel is built for JupyterLab 3 (`@jupyterlab/application ^3.1`) and its
server side needs jupyter-server < 2.8, so the environment holds JupyterLab 3.6. ipykernel gives
it a default Python kernel; setuptools supplies `distutils` (the extension imports it; Python 3.12
no longer ships it) and `pkg_resources` (betterproto imports it; setuptools 82 dropped it). JupyterLab 3.6 needs y-py (no wheels past Python 3.12) and ipython 9
needs Python 3.11, hence PYTHONS.

To move a pin: make a venv with a Python in PYTHONS, `pip install` REQUIREMENTS, check the panel in
a browser (tests/e2e/test_jupyterlab_browser.py), and paste `pip freeze` (plus setuptools) below.
"""

REQUIREMENTS = ("jupyterlab==3.6.*", "jupyter-server<2.8", "jupyterlab-pachyderm==2.8.*", "ipykernel", "setuptools")

PYTHONS = ((3, 11), (3, 12))  # the minor versions every pinned package has wheels for

CONSTRAINTS = """\
aiofiles==22.1.0
aiosqlite==0.22.1
anyio==4.16.0
argon2-cffi-bindings==26.2.0
argon2-cffi==25.1.0
arrow==1.4.0
asttokens==3.0.2
attrs==26.1.0
babel==2.19.0
beautifulsoup4==4.15.0
betterproto==2.0.0b5
bleach==6.4.0
certifi==2026.10.19.post1
cffi==2.1.1
charset-normalizer==3.5.3
comm==0.2.3
debugpy==1.8.22
defusedxml==0.7.1
executing==2.3.0
fastjsonschema==2.22.3
fqdn==1.6.0
grpc-interceptor==0.14.2
grpcio==1.85.3
grpclib==0.4.9
h2==4.4.1
hpack==4.2.0
hyperframe==6.1.0
idna==3.21
ipykernel==7.4.0
ipython-genutils==0.2.0
ipython==9.19.1
ipython_pygments_lexers==1.1.1
isoduration==20.11.0
jedi==0.20.1
Jinja2==3.1.6
json5==0.17.3
jsonpointer==3.12
jsonschema-specifications==2025.9.1
jsonschema==4.26.0
jupyter-events==0.12.1
jupyter-ydoc==0.2.5
jupyter_client==8.10.0
jupyter_core==5.9.1
jupyter_server==2.7.3
jupyter_server_fileid==0.9.3
jupyter_server_terminals==0.5.4
jupyter_server_ydoc==0.8.0
jupyterlab==3.6.8
jupyterlab_pachyderm==2.8.10
jupyterlab_pygments==0.3.0
jupyterlab_server==2.28.1
lark==1.3.1
MarkupSafe==3.0.4
matplotlib-inline==0.2.2
mistune==3.4.0
multidict==7.2.1
nbclassic==1.3.3
nbclient==0.11.0
nbconvert==7.17.2
nbformat==5.11.1
nest-asyncio2==1.7.4
nest-asyncio==1.6.0
notebook==6.5.4
notebook_shim==0.2.4
overrides==7.7.0
pachyderm-sdk==2.8.10
packaging==26.4
pandocfilters==1.5.1
parso==0.8.7
pexpect==4.9.0
platformdirs==4.14.9
prometheus_client==0.26.0
prompt_toolkit==3.0.53
psutil==7.2.2
ptyprocess==0.7.0
pure_eval==0.2.4
pycparser==3.12
pycurl==7.49.0
Pygments==2.21.0
python-dateutil==2.9.0.post0
python-dotenv==1.0.0
python-json-logger==4.2.0
PyYAML==6.0.4
pyzmq==27.3.0
referencing==0.37.0
requests==2.34.2
rfc3339-validator==0.1.4
rfc3986-validator==0.1.1
rfc3987-syntax==1.1.0
rpds-py==2026.9.1
Send2Trash==2.2.0
setuptools==81.0.0
six==1.17.0
soupsieve==4.1.4
stack-data==0.6.3
terminado==0.18.1
tinycss2==1.5.1
tornado==6.6.1
traitlets==5.16.1
typing_extensions==4.16.0
tzdata==2026.6
uri-template==1.3.0
urllib3==2.8.0
wcwidth==0.9.4
webcolors==25.10.0
webencodings==0.6.1
websocket-client==1.9.2
y-py==0.6.2
ypy-websocket==0.8.4
"""
