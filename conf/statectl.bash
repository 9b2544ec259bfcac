# bash completion for statectl. `make install` puts it in
# $(PREFIX)/share/bash-completion/completions/statectl, where bash-completion
# finds it; or `source` it. Commands and each command's options are read
# from the statectl being completed (its --help), so they never drift.

_statectl()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local prog=${COMP_WORDS[0]} cmd="" sub="" i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        -a | --addr | --timeout | --token-file | -n | --key-group | --key | --key-groups | --prefix | \
            --limit | --id | --state | --ttl | --update | --visibility | --remote)
            # The put/merge --ttl takes a duration; get's --ttl is a flag.
            [[ $w == --ttl && $cmd == get ]] || ((i++))
            ;;
        -*) ;;
        *)
            if [[ -z $cmd ]]; then
                cmd=$w
            elif [[ $cmd == checkpoint && -z $sub ]]; then
                sub=$w
            fi
            ;;
        esac
    done
    case $prev in
    --update)
        COMPREPLY=($(compgen -W "on-create-and-write on-read-and-write" -- "$cur"))
        return
        ;;
    --visibility)
        COMPREPLY=($(compgen -W "never-return-expired return-expired-if-not-cleaned-up" -- "$cur"))
        return
        ;;
    --token-file)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    -a | --addr | --timeout | -n | --key-group | --key | --key-groups | --prefix | --limit | --id | \
        --state | --remote)
        return
        ;;
    --ttl)
        [[ $cmd == get ]] || return
        ;;
    esac
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "-a --addr --json --hex --timeout --token-file --help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$("$prog" --help 2>/dev/null |
                sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\).*/\1/p' | sort -u)" -- "$cur"))
        fi
        return
    fi
    if [[ $cmd == checkpoint && -z $sub ]]; then
        COMPREPLY=($(compgen -W "rm verify inspect dump" -- "$cur"))
        return
    fi
    if [[ $cur == -* ]]; then
        local opts
        opts=$("$prog" $cmd $sub --help 2>/dev/null | sed -n '1,/^$/p' | grep -o -- '--[a-z-]*\|-n\b' | sort -u)
        COMPREPLY=($(compgen -W "$opts --json --hex --help" -- "$cur"))
        return
    fi
    case "$cmd $sub" in
    "checkpoint verify" | "checkpoint inspect" | "checkpoint dump")
        COMPREPLY=($(compgen -d -- "$cur"))
        ;;
    esac
}
complete -F _statectl statectl
