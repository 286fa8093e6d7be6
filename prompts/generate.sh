#!/usr/bin/env bash
# Regenerates FlowPBX's default prompt set: speech with espeak-ng, tones and the music-on-hold
# loop with sox, every file 8 kHz mono 16-bit PCM WAV (the media crate's internal format).
# The WAVs are committed; this script is only needed to change them. It installs its tools.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v sox >/dev/null || need+=(sox)
if [ "${#need[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

VOICE="${VOICE:-en-us}"
SPEED="${SPEED:-150}"

# speak NAME "text": espeak-ng at its native 22.05 kHz, then sox to 8 kHz mono 16-bit with a
# telephone band-pass, normalised to -3 dBFS, leading/trailing silence trimmed to 100 ms.
speak() {
  local name="$1" text="$2"
  espeak-ng -v "$VOICE" -s "$SPEED" -w "$tmp/$name.raw.wav" "$text"
  sox "$tmp/$name.raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$name.wav" \
    silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
    highpass 200 lowpass 3400 gain -n -3 pad 0.1 0.1
}

speak welcome "Welcome. Thank you for calling."
speak please-hold "Please hold while we connect your call."
speak invalid-option "That is not a valid option. Please try again."
speak goodbye "Goodbye."
speak sorry "Sorry, we cannot take your call right now. Please try again later."
speak voicemail-greeting "The person you are calling is not available. Please leave a message after the tone."
speak leave-message-after-tone "Please leave your message after the tone. When you are done, hang up or press pound."
speak mailbox-full "The mailbox is full and cannot accept new messages."
speak no-answer "There is no answer."
speak busy "The number you are calling is busy."
speak transfer "Please hold while your call is transferred."
speak enter-pin "Please enter your PIN, followed by the pound key."
speak follow-me-accept "You have a call. Press one to accept it."
for d in 0 1 2 3 4 5 6 7 8 9; do
  words=(zero one two three four five six seven eight nine)
  speak "digit-$d" "${words[$d]}"
done
speak star "star"
speak pound "pound"

# the dial-in voicemail (host/pbx/src/voicemail_menu.rs)
speak vm-enter-mailbox "Voicemail. Please enter your mailbox number, followed by the pound key."
speak vm-no-mailbox "There is no such mailbox."
speak vm-login-incorrect "Login incorrect."
speak vm-locked "This mailbox is locked after too many wrong PINs. Please try again later."
speak vm-you-have "You have"
speak vm-new-messages "new messages"
speak vm-saved-messages "saved messages"
speak vm-and "and"
speak vm-main-menu "Press 1 to listen to your messages. Press 0 for mailbox options. Press pound to exit."
speak vm-message "Message"
speak vm-received "Received"
speak vm-from "From"
speak vm-unknown-caller "an unknown caller"
speak vm-message-menu "Press 5 to repeat this message, 4 for the previous message, 6 for the next message, 7 to delete it, 9 to save it, 3 to call back, 8 to forward it, or star for the main menu."
speak vm-deleted "Message deleted."
speak vm-saved "Message saved."
speak vm-no-more-messages "There are no more messages."
speak vm-no-messages "You have no messages."
speak vm-forward-to "Enter the mailbox number to forward this message to, followed by the pound key."
speak vm-forwarded "Message forwarded."
speak vm-options-menu "Press 1 to record your unavailable greeting, 2 to record your busy greeting, 3 to record your name, 4 to record a temporary greeting, 5 to change your PIN, or star for the main menu."
speak vm-record-after-tone "Record after the tone. Press pound when you are done."
speak vm-greeting-saved "Your recording has been saved."
speak vm-new-pin "Please enter your new PIN of 4 to 12 digits, followed by the pound key."
speak vm-repeat-pin "Please enter your new PIN again."
speak vm-pin-changed "Your PIN has been changed."
speak vm-pin-mismatch "The PINs do not match, or are not 4 to 12 digits. Your PIN is unchanged."

# beep: a 1 kHz tone for 400 ms with 10 ms fades, at -6 dBFS.
sox -n -r 8000 -c 1 -b 16 -e signed-integer beep.wav synth 0.4 sine 1000 fade 0.01 0.4 0.01 gain -6

# music on hold: a 24 s loop of soft chords (two-bar I-vi-IV-V in C, triangle + sine pads),
# low-passed for the telephone band; the ends fade so the loop is seamless.
chord() { # chord OUT DUR f1 f2 f3
  sox -n -r 8000 -c 1 -b 16 -e signed-integer "$1" synth "$2" \
    sine "$3" sine "$4" triangle "$5" remix - fade q 0.3 "$2" 0.6 gain -n -14
}
i=0
for c in "261.63 329.63 392.00" "220.00 261.63 329.63" "174.61 220.00 261.63" "196.00 246.94 293.66"; do
  # shellcheck disable=SC2086
  chord "$tmp/c$i.wav" 3 $c
  i=$((i + 1))
done
sox "$tmp/c0.wav" "$tmp/c1.wav" "$tmp/c2.wav" "$tmp/c3.wav" \
    "$tmp/c0.wav" "$tmp/c1.wav" "$tmp/c2.wav" "$tmp/c3.wav" "$tmp/moh-raw.wav"
sox "$tmp/moh-raw.wav" -r 8000 -c 1 -b 16 -e signed-integer music-on-hold.wav \
    lowpass 3000 reverb 30 gain -n -6

ls -l ./*.wav | awk '{ total += $5 } END { printf "prompts: %d files, %d bytes\n", NR, total }'
