; em-agent.nsi — the Windows installer (makensis from Debian's nsis package), made by
; scripts/package-windows.sh with -DVERSION=… -DSTAGE=… -DOUTFILE=…
; Installs em-agent.exe, README.txt and a sample agent.conf into Program Files, puts the
; sample at %ProgramData%\em-agent\agent.conf unless one is there, and registers an
; uninstaller that removes the service first. The service itself is installed by
; `em-agent service install` once agent.conf names a directory and a sink.
; A 64-bit installer (Debian's nsis has the amd64 stubs): it runs where em-agent.exe does,
; and under a 64-bit-only wine.
Target amd64-unicode
Name "em-agent ${VERSION}"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\em-agent"
RequestExecutionLevel admin
SetCompressor /SOLID lzma
ShowInstDetails show

Page directory
Page instfiles
UninstPage uninstConfirm
UninstPage instfiles

!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\em-agent"

Section "em-agent"
  SetOutPath "$INSTDIR"
  File "${STAGE}\em-agent.exe"
  File "${STAGE}\README.txt"
  File "${STAGE}\agent.conf"
  SetShellVarContext all
  CreateDirectory "$APPDATA\em-agent"
  IfFileExists "$APPDATA\em-agent\agent.conf" keep_conf
    CopyFiles /SILENT "$INSTDIR\agent.conf" "$APPDATA\em-agent\agent.conf"
    DetailPrint "settings: $APPDATA\em-agent\agent.conf (the sample; edit it)"
    Goto conf_done
  keep_conf:
    DetailPrint "settings: $APPDATA\em-agent\agent.conf (kept as it was)"
  conf_done:
  WriteUninstaller "$INSTDIR\uninstall.exe"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayName" "em-agent (EPU metadata)"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINST_KEY}" "Publisher" "em-agent"
  WriteRegStr HKLM "${UNINST_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoRepair" 1
  IfSilent done
    MessageBox MB_OK "Next: edit $APPDATA\em-agent\agent.conf (dir, and out or amqp), then run as an administrator:$\r$\n$\r$\n  $\"$INSTDIR\em-agent.exe$\" service install$\r$\n  $\"$INSTDIR\em-agent.exe$\" service start$\r$\n$\r$\nSee $INSTDIR\README.txt."
  done:
SectionEnd

Section "Uninstall"
  ; The service first (stopped and removed; nothing happens when it was never installed).
  ExecWait '"$INSTDIR\em-agent.exe" service uninstall'
  Delete "$INSTDIR\em-agent.exe"
  Delete "$INSTDIR\README.txt"
  Delete "$INSTDIR\agent.conf"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey HKLM "${UNINST_KEY}"
  ; %ProgramData%\em-agent (settings, journal, log, events) is kept on purpose.
SectionEnd
