%% Probe (OTP 25.2.3): supervisor:get_childspec/2 on a simple_one_for_one supervisor, by a
%% child's pid, a dead pid that was a child, a dead pid that never was, a live stranger's pid,
%% the template's id and another id; and on a static supervisor, by a child's pid.
%% Run: erlc get_childspec_probe.erl && erl -noshell -pa . -eval 'get_childspec_probe:main()' -s init stop
-module(get_childspec_probe).
-export([main/0, init/1, start_child/0]).

init(simple) ->
    {ok, {#{strategy => simple_one_for_one},
          [#{id => tmpl, start => {?MODULE, start_child, []}, restart => transient}]}};
init(static) ->
    {ok, {#{}, [#{id => a, start => {?MODULE, start_child, []}}]}}.

start_child() ->
    {ok, spawn_link(fun() -> receive stop -> ok end end)}.

show(What, {ok, Spec}) ->
    io:format("result get_childspec ~s -> {ok,#{id=~p,restart=~p}}~n",
              [What, maps:get(id, Spec), maps:get(restart, Spec)]);
show(What, Other) ->
    io:format("result get_childspec ~s -> ~p~n", [What, Other]).

main() ->
    process_flag(trap_exit, true),
    {ok, Sup} = supervisor:start_link(?MODULE, simple),
    {ok, Child} = supervisor:start_child(Sup, []),
    {ok, Gone} = supervisor:start_child(Sup, []),
    ok = supervisor:terminate_child(Sup, Gone),
    Never = spawn(fun() -> ok end),
    Ref = monitor(process, Never), receive {'DOWN', Ref, _, _, _} -> ok end,
    Stranger = spawn(fun() -> receive stop -> ok end end),
    show("simple child_pid", supervisor:get_childspec(Sup, Child)),
    show("simple terminated_child_pid", supervisor:get_childspec(Sup, Gone)),
    show("simple dead_stranger_pid", supervisor:get_childspec(Sup, Never)),
    show("simple live_stranger_pid", supervisor:get_childspec(Sup, Stranger)),
    show("simple template_id", supervisor:get_childspec(Sup, tmpl)),
    show("simple other_id", supervisor:get_childspec(Sup, other)),
    {ok, Static} = supervisor:start_link(?MODULE, static),
    [{a, A, _, _}] = supervisor:which_children(Static),
    show("static child_pid", supervisor:get_childspec(Static, A)),
    show("static id", supervisor:get_childspec(Static, a)),
    ok.
