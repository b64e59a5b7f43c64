#!/usr/bin/env bash
# Regenerates the spoken prompts in this folder from the `say` texts in templates/prompts.toml,
# for every prompt that names an `audio` file. Reproducible: the same espeak-ng and sox versions
# give the same bytes. Output is telephone quality (8 kHz, mono, G.711 mu-law WAV, about 8 KB a
# second), which is what a phone call carries anyway, so nothing is lost and the files stay small.
#
#   apt-get install -y espeak-ng sox   # once
#   bash audio/make.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
templates="$here/../templates/prompts.toml"
command -v espeak-ng >/dev/null && command -v sox >/dev/null || {
  echo "needs espeak-ng and sox: apt-get install -y espeak-ng sox" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 - "$templates" <<'PY' > "$tmp/list"
import sys, tomllib
t = tomllib.load(open(sys.argv[1], "rb"))
for key, v in t.items():
    if isinstance(v, dict) and "audio" in v:
        print(v["audio"] + "\t" + " ".join(v["say"].split()))
PY
while IFS=$'\t' read -r file text; do
  espeak-ng -v en-us -s 150 -w "$tmp/raw.wav" "$text"
  # Trim leading/trailing silence, leave a short pause at the end, level to -3 dBFS, telephone format.
  sox -R -D "$tmp/raw.wav" -r 8000 -c 1 -e u-law "$here/$file" \
    silence 1 0.05 0.5% reverse silence 1 0.05 0.5% reverse pad 0 0.3 norm -3
  printf '%-16s %6d bytes  "%s"\n' "$file" "$(stat -c %s "$here/$file")" "$text"
done < "$tmp/list"

# Hold audio for conference mode (conference.hold_audio = "hold.wav"): a slow, soft arpeggio that
# sox synthesizes from sine and triangle tones (no recording, no sample, so no licence to track),
# looped by the provider while the caller waits. About 16 s, same telephone format.
chords=("261.63 329.63 392.00" "220.00 261.63 329.63" "174.61 220.00 261.63" "196.00 246.94 293.66")
parts=()
i=0
for chord in "${chords[@]}"; do
  for rep in 1 2; do
    for f in $chord; do
      i=$((i+1))
      sox -R -D -n -r 8000 -c 1 "$tmp/n$i.wav" synth 0.66 sine "$f" synth 0.66 triangle mix "$f" \
        fade q 0.04 0.66 0.45 vol 0.5
      parts+=("$tmp/n$i.wav")
    done
  done
done
sox -V1 -R -D "${parts[@]}" -r 8000 -c 1 -e u-law "$here/hold.wav" reverb 30 norm -9 trim 0 15.5 fade t 0.2 15.5 0.2
printf '%-16s %6d bytes  (synthesized hold audio)\n' "hold.wav" "$(stat -c %s "$here/hold.wav")"
echo "made with espeak-ng $(espeak-ng --version | awk "{print \$4}"), $(sox --version | sed "s/.*SoX/SoX/")"
