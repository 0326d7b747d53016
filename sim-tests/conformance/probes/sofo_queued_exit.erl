%% Probe (OTP 25.2.3 / Elixir 1.14.0): what a terminating simple_one_for_one
%% supervisor (supervisor:terminate_dynamic_children/1) and a terminating
%% Elixir DynamicSupervisor (terminate_children/2, monitor_children/1) do
%% with a child that has ALREADY exited, i.e. whose {'EXIT',Child,Reason} is
%% queued in the supervisor's mailbox behind the parent's exit signal.
%%
%% Per case (sup kind x restart type x shutdown):
%%   * the case process (trapping exits) start_links the supervisor and
%%     starts 6 children, named by the reason they will exit with:
%%     normal, shutdown, shutdown_x ({shutdown,x}), boom, boom2 (also boom)
%%     and live (never exits by itself; does not trap exits);
%%   * erlang:suspend_process(Sup); exit(Sup, shutdown) (from the parent);
%%     each child but `live` exits with its reason (waited for: dead);
%%     erlang:resume_process(Sup).  The supervisor's mailbox is then
%%     [{'EXIT',Parent,shutdown}, {'EXIT',C1,normal}, ...], so gen_server
%%     handles the parent's EXIT first and terminate/2 runs with the
%%     children's EXITs still queued.
%%   * supervisor reports are captured by a logger handler (runs inside the
%%     supervisor) and printed in the oracle's style; deaths are printed by
%%     a tracer that monitors every process and, before any line, writes the
%%     deaths that already happened (oracle rule), so causal order holds.
%%
%% Run:  erlc sofo_queued_exit.erl && erl -noshell -pa . -pa ELIXIR_EBIN \
%%           -eval 'sofo_queued_exit:main()' -s init stop
-module(sofo_queued_exit).
-export([main/0, child_start/3, child_init/4, log/2]).
%% supervisor callback
-export([init/1]).

-define(T, sqe_tracer).

main() ->
    _ = [logger:remove_handler(H) || H <- logger:get_handler_ids()],
    ok = logger:add_handler(sqe, ?MODULE, #{level => all}),
    Tr = spawn(fun() -> tracer(#{}, #{}) end),
    register(?T, Tr),
    Cases = [{Kind, Restart, Shutdown}
             || Kind <- [sofo, dsup],
                Shutdown <- [5000, brutal_kill],
                Restart <- [permanent, transient, temporary]],
    lists:foreach(fun run_case/1, Cases),
    ok = tcall(flush),
    ok.

children() ->
    [{normal, normal}, {shutdown, shutdown}, {shutdown_x, {shutdown, x}},
     {boom, boom}, {boom2, boom}, {live, none}].

run_case({Kind, Restart, Shutdown}) ->
    Self = self(),
    P = spawn(fun() -> Self ! {self(), case_proc(Kind, Restart, Shutdown)} end),
    receive {P, done} -> ok end.

case_proc(Kind, Restart, Shutdown) ->
    process_flag(trap_exit, true),
    SupName = lists:flatten(io_lib:format("~w_~w_~w", [Kind, Restart, Shutdown])),
    log(["case ", SupName]),
    {ok, Sup} = start_sup(Kind, SupName, Restart, Shutdown),
    ok = tcall({name, Sup, SupName, sup_exit}),
    Kids = [{N, start_kid(Kind, Sup, SupName, N, R, Restart, Shutdown)}
            || {N, R} <- children()],
    log(["op suspend ", SupName]),
    true = erlang:suspend_process(Sup),
    log(["op stop ", SupName, " (parent: exit(Sup, shutdown))"]),
    exit(Sup, shutdown),
    [begin
         log(["op crash ", SupName, "/", atom_to_list(N), " reason=", fmt(R)]),
         Pid ! exit_now,
         wait_dead(Pid)
     end || {N, Pid} <- Kids, {N1, R} <- children(), N1 =:= N, N =/= live],
    log(["op resume ", SupName]),
    true = erlang:resume_process(Sup),
    wait_dead(Sup),
    receive {'EXIT', Sup, _} -> ok after 1000 -> ok end,
    ok = tcall(flush),
    done.

start_sup(sofo, SupName, Restart, Shutdown) ->
    supervisor:start_link(?MODULE, {sofo, SupName, Restart, Shutdown});
start_sup(dsup, _SupName, _Restart, _Shutdown) ->
    'Elixir.DynamicSupervisor':start_link([{strategy, one_for_one}]).

init({sofo, SupName, Restart, Shutdown}) ->
    {ok, {#{strategy => simple_one_for_one, intensity => 10, period => 5},
          [#{id => kid, start => {?MODULE, child_start, [SupName]},
             restart => Restart, shutdown => Shutdown}]}}.

start_kid(sofo, Sup, _SupName, N, R, _Restart, _Shutdown) ->
    {ok, Pid} = supervisor:start_child(Sup, [N, R]),
    Pid;
start_kid(dsup, Sup, SupName, N, R, Restart, Shutdown) ->
    Spec = #{id => N, start => {?MODULE, child_start, [SupName, N, R]},
             restart => Restart, shutdown => Shutdown},
    {ok, Pid} = 'Elixir.DynamicSupervisor':start_child(Sup, Spec),
    Pid.

child_start(SupName, N, R) ->
    proc_lib:start_link(?MODULE, child_init, [self(), SupName, N, R]).

child_init(Parent, SupName, N, R) ->
    Path = SupName ++ "/" ++ atom_to_list(N),
    ok = tcall({name, self(), Path, exit}),
    log(["start ", Path]),
    proc_lib:init_ack(Parent, {ok, self()}),
    receive exit_now -> exit(R) end.

wait_dead(Pid) ->
    Ref = erlang:monitor(process, Pid),
    receive {'DOWN', Ref, process, Pid, _} -> ok end.

%%---------------------------------------------------------------- logger

log(#{msg := {report, #{label := {supervisor, Ctx}, report := Rep}}}, _) ->
    Off = proplists:get_value(offender, Rep),
    OffStr = case proplists:get_value(nb_children, Off) of
                 N when is_integer(N) -> {raw, integer_to_list(N) ++ "_children"};
                 undefined -> {bare, proplists:get_value(pid, Off)}
             end,
    _ = (catch tcall({line, ["report ", {bare, self()}, " context=", atom_to_list(Ctx),
                              " offender=", OffStr,
                              " reason=", {t, proplists:get_value(reason, Rep)}]})),
    ok;
log(_, _) ->
    ok.

%%---------------------------------------------------------------- tracer

log(Line) -> ok = tcall({line, Line}).

tcall(Req) ->
    Ref = erlang:monitor(process, ?T),
    ?T ! {tcall, self(), Ref, Req},
    receive
        {Ref, Reply} -> erlang:demonitor(Ref, [flush]), Reply;
        {'DOWN', Ref, _, _, R} -> exit({tracer_down, R})
    end.

%% Names: Pid => {Path, Tag}; Mons: MRef => Pid
tracer(Names, Mons) ->
    receive
        {tcall, From, Ref, Req} ->
            {Reply, Names1, Mons1} = treq(Req, Names, flush_dead(Names, Mons)),
            From ! {Ref, Reply},
            tracer(Names1, Mons1)
    end.

treq({name, Pid, Path, Tag}, Names, Mons) ->
    MRef = erlang:monitor(process, Pid),
    {ok, Names#{Pid => {Path, Tag}}, Mons#{MRef => Pid}};
treq({line, Line}, Names, Mons) ->
    io:put_chars([expand(Line, Names), $\n]),
    {ok, Names, Mons};
treq(flush, Names, Mons) ->
    {ok, Names, Mons}.

flush_dead(Names, Mons) ->
    Dead = lists:sort([{element(1, maps:get(P, Names)), MRef, P}
                       || {MRef, P} <- maps:to_list(Mons), not is_process_alive(P)]),
    lists:foldl(
      fun({Path, MRef, P}, M) ->
              receive {'DOWN', MRef, process, P, Reason} ->
                      {_, Tag} = maps:get(P, Names),
                      io:put_chars([atom_to_list(Tag), " ", Path, " reason=",
                                    fmt(Reason, Names), $\n]),
                      maps:remove(MRef, M)
              end
      end, Mons, Dead).

expand(L, Names) when is_list(L) -> [expand(X, Names) || X <- L];
expand({t, T}, Names) -> fmt(T, Names);
expand({bare, P}, Names) when is_pid(P) ->
    case maps:find(P, Names) of {ok, {Path, _}} -> Path; error -> "<pid>" end;
expand({bare, T}, Names) -> fmt(T, Names);
expand({raw, S}, _) -> S;
expand(X, _) -> X.

fmt(T) -> fmt(T, #{}).
fmt(P, Names) when is_pid(P) ->
    case maps:find(P, Names) of {ok, {Path, _}} -> ["<", Path, ">"]; error -> "<pid>" end;
fmt(T, Names) when is_tuple(T) ->
    ["{", lists:join(",", [fmt(X, Names) || X <- tuple_to_list(T)]), "}"];
fmt(L, Names) when is_list(L) ->
    ["[", lists:join(",", [fmt(X, Names) || X <- L]), "]"];
fmt(T, _) -> io_lib:format("~w", [T]).
