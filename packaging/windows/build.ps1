# Windows (UNTESTED: written without a Windows machine to run it on; see docs/packaging.md).
# Builds dist\pachtray\ with build.spec (no console window), then the installer
# dist\Pachtray-Setup-<version>.exe with Inno Setup 6 (iscc.exe on PATH or in its default folder).
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
$ErrorActionPreference = "Stop"
$root = Resolve-Path (Join-Path $PSScriptRoot "..\..")
Set-Location $root

if (-not (Test-Path .venv\Scripts\python.exe)) { py -3 -m venv .venv }
.venv\Scripts\python.exe -m pip install -q -c constraints.txt -e ".[build]"
$env:PACHTRAY_BUILD = Join-Path $root "build"
.venv\Scripts\python.exe -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build\pyinstaller build.spec

# jupyterlab-pachyderm looks for `mount-server` on PATH: the same binary under that name
# (it dispatches on the name it was started under; _internal\ is found next to it).
Copy-Item dist\pachtray\pachtray.exe dist\pachtray\mount-server.exe -Force

$version = (Select-String -Path app\pachtray\__init__.py -Pattern '__version__ = "(.*)"').Matches[0].Groups[1].Value
$iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue).Source
if (-not $iscc) { $iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
& $iscc "/DAppVersion=$version" "/DSourceDir=$root\dist\pachtray" "/DIconFile=$root\build\icons\pachtray.ico" `
    "/O$root\dist" packaging\windows\pachtray.iss
