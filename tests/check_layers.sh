#!/usr/bin/env bash
# check_layers.sh -- the layering of docs/architecture.md, checked on the sources.
#
#   bash tests/check_layers.sh SOURCE_DIR              # the tree as it is: must pass
#   bash tests/check_layers.sh --self-test SOURCE_DIR  # and, on a copy, each kind of
#                                                      # violation must be caught
#
# A layer's files may include our headers from the layers below it only, and the
# science layers never see the database's client library nor the database layer
# the science's file and FFT libraries:
#
#   src/core     errors, config, files, processes, MPI   -> (none of ours)
#   src/db       PostgreSQL, migrations, queue            -> core
#   src/data     UVH5, FITS, groups, array, sky           -> core
#   src/calibration  antenna gains: solve, caltable, apply -> data, core
#   src/flagging interference: planes, inputs, flagged copy -> data, core
#   src/imaging  visibilities to images                   -> data, core
#   src/mosaic   images to mosaics                        -> imaging, data, core
#   src/sources  images to catalogues                     -> imaging, data, core
#   src/api      HTTP server, REST API, metrics           -> db, core
#   mpi          the engine, stages, chains               -> all but api and cli
#   src/cli      the command line                         -> all
#
#   no <libpq-fe.h> (nor libpq's other headers) outside src/db: the engine and the
#   command line reach PostgreSQL through the queue and products clients;
#   no <hdf5.h>, <fftw3*.h>, <fitsio.h>, wcslib in core, db and api.
#
# The CMake libraries enforce the same at build time (each exports only its own
# folder and links only the layers below); this check says which line broke it.
# Exit 0 when the tree keeps the rule, 1 with one line per violation otherwise.
set -u

self_test=false
if [ "${1:-}" = --self-test ]; then
    self_test=true
    shift
fi
src=${1:?usage: check_layers.sh [--self-test] SOURCE_DIR}

layers=(src/core src/db src/data src/calibration src/flagging src/imaging src/mosaic src/sources src/api mpi
    src/cli)
allowed() { # allowed LAYER: the layers whose headers LAYER may include
    case $1 in
    src/core) echo "src/core" ;;
    src/db) echo "src/db src/core" ;;
    src/data) echo "src/data src/core" ;;
    src/calibration) echo "src/calibration src/data src/core" ;;
    src/flagging) echo "src/flagging src/data src/core" ;;
    src/imaging) echo "src/imaging src/data src/core" ;;
    src/mosaic) echo "src/mosaic src/imaging src/data src/core" ;;
    src/sources) echo "src/sources src/imaging src/data src/core" ;;
    src/api) echo "src/api src/db src/core" ;;
    mpi) echo "mpi src/mosaic src/sources src/imaging src/calibration src/flagging src/data src/db src/core" ;;
    src/cli) echo "${layers[*]}" ;;
    esac
}
banned() { # banned LAYER: an extended regex of system headers LAYER must not include
    case $1 in
    src/core) echo '^(libpq-fe\.h|libpq/|postgresql/|hdf5|H5|fftw3|fitsio|wcslib/)' ;;
    src/db) echo '^(hdf5|H5|fftw3|fitsio|wcslib/)' ;;
    src/api) echo '^(libpq-fe\.h|libpq/|postgresql/|hdf5|H5|fftw3|fitsio|wcslib/)' ;;
    *) echo '^(libpq-fe\.h|libpq/|postgresql/)' ;;
    esac
}

check_tree() { # check_tree DIR: prints violations, returns 1 if any
    local dir=$1 bad=0
    declare -A home
    local layer f h
    for layer in "${layers[@]}"; do
        [ -d "$dir/$layer" ] || { echo "missing layer folder $layer"; bad=1; continue; }
        for f in "$dir/$layer"/*.h; do
            [ -e "$f" ] && home[$(basename "$f")]=$layer
        done
    done
    for layer in "${layers[@]}"; do
        local ok ban
        ok=" $(allowed "$layer") "
        ban=$(banned "$layer")
        for f in "$dir/$layer"/*.c "$dir/$layer"/*.h; do
            [ -e "$f" ] || continue
            local rel=${f#"$dir"/} n=0 line
            while IFS= read -r line; do
                n=$((n + 1))
                if [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]]; then
                    h=${BASH_REMATCH[1]}
                    local at=${home[$(basename "$h")]:-}
                    if [ -n "$at" ] && [[ $ok != *" $at "* ]]; then
                        echo "$rel:$n: includes \"$h\" of $at, which $layer must not use"
                        bad=1
                    fi
                elif [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\<([^\>]+)\> ]]; then
                    h=${BASH_REMATCH[1]}
                    if [[ $h =~ $ban ]]; then
                        echo "$rel:$n: includes <$h>, which $layer must not use"
                        bad=1
                    fi
                fi
            done <"$f"
        done
    done
    return $bad
}

if ! check_tree "$src"; then
    echo "FAIL the layering (tests/check_layers.sh, docs/architecture.md)"
    exit 1
fi
echo "ok   every include keeps the layering (${#layers[@]} layers)"
$self_test || exit 0

# The check must be able to fail: each kind of violation, planted in a copy.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
plant() { # plant DESCRIPTION FILE LINE: the copy with LINE added to FILE must fail
    rm -rf "$tmp/t"
    mkdir -p "$tmp/t"
    cp -r "$src/src" "$src/mpi" "$tmp/t/"
    printf '%s\n' "$3" >>"$tmp/t/$2"
    if check_tree "$tmp/t" >"$tmp/out"; then
        echo "FAIL self-test: $1 went unnoticed"
        fails=$((fails + 1))
    else
        echo "ok   self-test: $1 caught ($(head -1 "$tmp/out"))"
    fi
}
plant "science including the queue" src/imaging/clean.c '#include "queue.h"'
plant "science including libpq" src/data/uvh5.c '#include <libpq-fe.h>'
plant "calibration including the imager" src/calibration/calibration.c '#include "imager.h"'
plant "the database including HDF5" src/db/queue.c '#include <hdf5.h>'
plant "the database including FFTW" src/db/migrate.c '#include <fftw3.h>'
plant "the database including science" src/db/database.c '#include "imager.h"'
plant "core including a layer above" src/core/error.c '#include "uvh5.h"'
plant "the engine including the command line" mpi/engine.c '#include "cli_util.h"'
plant "the command line talking SQL itself" src/cli/cmd_products.c '#include <libpq-fe.h>'
plant "the API including science" src/api/api.c '#include "uvh5.h"'
plant "the API talking SQL itself" src/api/metrics.c '#include <libpq-fe.h>'
[ $fails -eq 0 ] || exit 1
