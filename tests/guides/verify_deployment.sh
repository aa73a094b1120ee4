#!/bin/bash

echo "=== Verifying Ramanujan CRDT Network Deployment ==="

COMPONENTS=(
    "stream-red"
    "stream-blue"
    "stream-green"
    "crdt-service"
    "egraph-service"
    "skill-verification"
    "agent-orchestrator"
    "duck-colors"
    "transduction-2tdx"
    "interaction-timeline"
    "dashboard"
)

FAILED=0
for component in "${COMPONENTS[@]}"; do
    URL="https://${component}.worm.sex/"
    STATUS=$(curl -s -o /dev/null -w "%{http_code}" "$URL")
    if [ "$STATUS" = "200" ]; then
        echo "✓ $component: $STATUS OK"
    else
        echo "✗ $component: $STATUS FAILED"
        FAILED=$((FAILED + 1))
    fi
done

echo ""
if [ $FAILED -eq 0 ]; then
    echo "✓ All 11 components verified successfully!"
    exit 0
else
    echo "✗ $FAILED components failed verification"
    exit 1
fi
