#!/bin/sh
# Screenshots for docs/shops.md (not run in CI): the shop till's browser flow
# (tests/test_web_shop.py) writes its PNGs to a scratch folder; the ones the guide shows are
# copied to docs/shops/. Run from the repository root:  sh tests/web/shop_screenshots.sh
set -eu
out=$(mktemp -d)
AYNI_SHOP_SHOTS="$out" PYTHONPATH="$PWD" "${PYTHON:-python}" -m pytest tests/test_web_shop.py -q -x -p no:cacheprovider
mkdir -p docs/shops
for s in s01-profile s03-customer-pays s05-till-paid s06-standing-code-print s07-standing-code-es \
         s09-refunded s10-customer-refund-link s11-till-mixed s13-till-phone s14-report; do
  cp "$out/$s.png" docs/shops/
done
rm -rf "$out"
echo "docs/shops/: $(ls docs/shops | wc -l) screenshots"
