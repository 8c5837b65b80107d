#!/usr/bin/env bash
# Runs `deckhand wait` for the action's inputs, writes the outcome to the job summary and fails
# the step as deckhand wait does: 1 failed, rolled back or will not deploy; 2 timed out.
set -uo pipefail

fail() {
  echo "::error title=deckhand::$1"
  echo "exit-status=1" >> "${GITHUB_OUTPUT:-/dev/null}"
  exit 1
}

[ -n "${DECKHAND_SERVICE:-}" ] || fail "input service is empty: give CLUSTER/SERVICE"
[ -n "${DECKHAND_DIGEST:-}" ] || fail "input digest is empty: give the digest the job pushed"
[ -z "${DECKHAND_REGION:-}" ] || export AWS_REGION="$DECKHAND_REGION"

table="${DECKHAND_TABLE_INPUT:-}"
if [ -z "$table" ] && [ -n "${DECKHAND_STACK:-}" ]; then
  table="$(aws cloudformation describe-stacks --stack-name "$DECKHAND_STACK" \
    --query "Stacks[0].Outputs[?OutputKey=='TableName'].OutputValue" --output text)" ||
    fail "could not read the TableName output of stack $DECKHAND_STACK"
  [ -n "$table" ] && [ "$table" != "None" ] || fail "stack $DECKHAND_STACK has no TableName output"
fi
[ -n "$table" ] || fail "give input table (the stack's TableName output) or input stack"

output="$(deckhand --table "$table" wait "$DECKHAND_SERVICE" --digest "$DECKHAND_DIGEST" \
  --timeout "${DECKHAND_TIMEOUT:-20m}" 2>&1)"
status=$?
# What deckhand prints (reasons quote tags and events) is not read as workflow commands.
token="deckhand-$RANDOM$RANDOM$RANDOM$$"
echo "::stop-commands::$token"
printf '%s\n' "$output"
echo "::$token::"

case "$status" in
  0) headline="deployed" ;;
  1) headline="not deployed: failed, rolled back or held" ;;
  2) headline="not known in time (timeout ${DECKHAND_TIMEOUT:-20m}), or the arguments were refused" ;;
  *) headline="deckhand wait exited with $status" ;;
esac
{
  echo "### deckhand: \`$DECKHAND_SERVICE\` $headline"
  echo
  echo "Digest \`$DECKHAND_DIGEST\`, table \`$table\`, exit status $status."
  echo
  echo '~~~text'
  printf '%s\n' "$output"
  echo '~~~'
} >> "${GITHUB_STEP_SUMMARY:-/dev/null}"
echo "exit-status=$status" >> "${GITHUB_OUTPUT:-/dev/null}"
[ "$status" -eq 0 ] || echo "::error title=deckhand::$DECKHAND_SERVICE $headline"
exit "$status"
