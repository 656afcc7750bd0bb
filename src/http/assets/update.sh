#!/usr/bin/env bash
# Vendors GraphiQL's browser assets from the npm registry, so the page
# served at /graphql loads nothing from elsewhere.
#
#   src/http/assets/update.sh [GRAPHIQL_VERSION [REACT_VERSION]]
#
# Replaces the package directories here (named package@version) with the
# files the page needs and each package's LICENSE, and rewrites SOURCES
# with what npm says each tarball's integrity is. Then change the versions
# in src/http/assets.rs, src/http/graphiql.html and README.md here;
# `cargo test --lib assets` says if one was missed.
set -euo pipefail
graphiql=${1:-3.8.3}
react=${2:-18.3.1}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
npm pack --json "graphiql@$graphiql" "react@$react" "react-dom@$react" >pack.json
for tarball in *.tgz; do
    mkdir "${tarball%.tgz}"
    tar -xzf "$tarball" -C "${tarball%.tgz}"
done

vendor() { # package version files...
    local package=$1 version=$2
    shift 2
    local from="$tmp/$package-$version/package" to="$here/$package@$version"
    rm -rf "$here/$package"@*
    mkdir -p "$to"
    cp "$from/LICENSE" "$to/"
    for file in "$@"; do
        cp "$from/$file" "$to/"
    done
}
vendor graphiql "$graphiql" graphiql.min.js graphiql.min.css
vendor react "$react" umd/react.production.min.js
vendor react-dom "$react" umd/react-dom.production.min.js

node -e '
for (const p of JSON.parse(require("fs").readFileSync(0, "utf8")))
  console.log(`${p.name}@${p.version} ${p.integrity}`);
' <pack.json >"$here/SOURCES"
cat "$here/SOURCES"
