; Inno Setup 6 script for Pachtray (UNTESTED; built by packaging\windows\build.ps1, which passes
; AppVersion, SourceDir = the PyInstaller bundle dist\pachtray, and IconFile).
; Installs per user (no admin needed), adds Start menu entries, optionally starts at login and puts
; mount-server on the user's PATH for jupyterlab-pachyderm. WinFsp (the FUSE layer) is checked first.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif

[Setup]
AppId={{6B0E5C1E-7A53-4C55-9B7E-2F0B3A7C9D11}
AppName=Pachtray
AppVersion={#AppVersion}
AppPublisher=Pachtray developers
DefaultDirName={localappdata}\Programs\Pachtray
DefaultGroupName=Pachtray
PrivilegesRequired=lowest
OutputBaseFilename=Pachtray-Setup-{#AppVersion}
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\pachtray.exe
Compression=lzma2
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
ChangesEnvironment=yes
CloseApplications=force

[Tasks]
Name: "startup"; Description: "Start Pachtray when I log in"; Flags: unchecked
Name: "path"; Description: "Put mount-server on my PATH (for jupyterlab-pachyderm)"

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\Pachtray"; Filename: "{app}\pachtray.exe"
Name: "{group}\Pachtray window"; Filename: "{app}\pachtray.exe"; Parameters: "--window"
Name: "{userstartup}\Pachtray"; Filename: "{app}\pachtray.exe"; Tasks: startup

[Registry]
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; \
    ValueData: "{olddata};{app}"; Tasks: path; Check: NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\pachtray.exe"; Description: "Start Pachtray"; Flags: nowait postinstall skipifsilent

[UninstallRun]
; Stop the app and its daemon (which unmounts) before the files go.
Filename: "{sys}\taskkill.exe"; Parameters: "/IM pachtray.exe /T"; Flags: runhidden; RunOnceId: "StopPachtray"
Filename: "{sys}\taskkill.exe"; Parameters: "/IM mount-server.exe /T"; Flags: runhidden; RunOnceId: "StopMountServer"

[Code]
function WinFspInstalled(): Boolean;
var
  Dir: String;
begin
  Result := RegQueryStringValue(HKLM32, 'SOFTWARE\WinFsp', 'InstallDir', Dir) and
            FileExists(AddBackslash(Dir) + 'bin\winfsp-x64.dll');
end;

function InitializeSetup(): Boolean;
begin
  Result := True;
  if not WinFspInstalled() then
    Result := MsgBox('Pachtray mounts Pachyderm repos with WinFsp, which is not installed.' + #13#10#13#10 +
                     'Install it from https://winfsp.dev/rel/ (before or after Pachtray).' + #13#10#13#10 +
                     'Continue installing Pachtray?', mbConfirmation, MB_YESNO) = IDYES;
end;

function NeedsAddPath(Dir: String): Boolean;
var
  Path: String;
begin
  if not RegQueryStringValue(HKCU, 'Environment', 'Path', Path) then
    Result := True
  else
    Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Path) + ';') = 0;
end;
