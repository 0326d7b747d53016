%% Probe (OTP 25.2.3 / Elixir 1.14.0): gen_server:stop/1,3 (= gen:stop ->
%% proc_lib:stop/3), Elixir GenServer.stop/3 and Supervisor.stop/3,
%% DynamicSupervisor.stop/3, on servers and supervisors.
%%
%% Each case runs in a fresh caller process.  Lines (oracle style):
%%   case X                        - start of case X
%%   call stop S reason=R timeout=T [api=A]   - the caller calls A:stop
%%   terminate S reason=R          - the server's terminate/2 was entered
%%   terminate_done S              - the server's terminate/2 finished (slow ones)
%%   exit P reason=R / sup_exit P reason=R     - P died (tracer monitor)
%%   result stop S -> ok | {exit,R}            - what the caller got
%%   alive S -> true|false         - is_process_alive right after the call
%%   mailbox caller -> [...]       - the caller's mailbox at the end
%%   report gen_server_terminate S reason=R    - gen_server error report
%%   report proc_lib_crash S class=C reason=R  - proc_lib crash report
%%   report S context=C offender=P reason=R    - supervisor report
%% Deaths are written by a tracer that, before any line, first writes the
%% deaths that already happened (oracle rule), so a death that causally
%% precedes a line is written before it; several such deaths are written in
%% the order their 'DOWN's reached the tracer (the oracle sorts them by path
%% instead).  Stack traces print as <stack>.
%%
%% Run:  erlc stop_probe.erl && erl -noshell -pa . -pa ELIXIR_EBIN \
%%           -eval 'stop_probe:main()' -s init stop
-module(stop_probe).
-export([main/0, log/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).
-export([start_worker/1]).

-define(T, sp_tracer).

main() ->
    _ = [logger:remove_handler(H) || H <- logger:get_handler_ids()],
    ok = logger:add_handler(sp, ?MODULE, #{level => all}),
    register(?T, spawn(fun() -> tracer(#{}, #{}) end)),
    Cases = [a_default_normal,
             b1_shutdown_tuple, b2_boom, b3_linked_normal, b4_linked_shutdown_tuple,
             b5_linked_boom, b6_linked_trapping_boom,
             c1_dead_pid, c2_dead_pid_catch, c3_dead_pid_elixir,
             d1_timeout_slow_terminate, d2_timeout_slow_terminate_elixir,
             d3_timeout_busy_server,
             e1_supervisor_stop, e2_supervisor_stop_boom_elixir, e3_dynamic_supervisor_stop,
             f1_terminate_crashes, f2_terminate_exits_other, f3_terminate_crashes_elixir,
             g1_unregistered_name, g2_unregistered_name_elixir, g3_unregistered_name_node,
             g4_unregistered_global, g5_registered_name,
             h1_stop_self, i1_not_a_gen_process],
    lists:foreach(fun run_case/1, Cases),
    timer:sleep(100),
    ok = tcall(flush).

run_case(Case) ->
    Self = self(),
    {P, Ref} = spawn_monitor(fun() ->
                                     name(self(), "caller"),
                                     log(["case ", atom_to_list(Case)]),
                                     do_case(Case),
                                     Self ! {self(), done}
                             end),
    receive
        {P, done} -> erlang:demonitor(Ref, [flush]);
        {'DOWN', Ref, process, P, _} -> ok
    end,
    timer:sleep(50),
    ok = tcall(forget).

%%---------------------------------------------------------------- cases

do_case(a_default_normal) ->
    S = srv(srv_a, #{}),
    stop_call(gen_server, S, srv_a, default),
    alive(S, srv_a);
do_case(b1_shutdown_tuple) ->
    S = srv(srv_b1, #{}),
    stop_call(gen_server, S, srv_b1, {{shutdown, x}, infinity}),
    alive(S, srv_b1);
do_case(b2_boom) ->
    S = srv(srv_b2, #{}),
    stop_call(gen_server, S, srv_b2, {boom, infinity}),
    alive(S, srv_b2);
do_case(b3_linked_normal) ->
    S = srv_link(srv_b3, #{}),
    stop_call(gen_server, S, srv_b3, {normal, infinity}),
    timer:sleep(20),
    log(["caller still running"]);
do_case(b4_linked_shutdown_tuple) ->
    S = srv_link(srv_b4, #{}),
    stop_call(gen_server, S, srv_b4, {{shutdown, x}, infinity}),
    timer:sleep(20),
    log(["caller still running"]);
do_case(b5_linked_boom) ->
    S = srv_link(srv_b5, #{}),
    stop_call(gen_server, S, srv_b5, {boom, infinity}),
    timer:sleep(20),
    log(["caller still running"]);
do_case(b6_linked_trapping_boom) ->
    process_flag(trap_exit, true),
    S = srv_link(srv_b6, #{}),
    stop_call(gen_server, S, srv_b6, {boom, infinity}),
    timer:sleep(20),
    log(["caller still running"]),
    mailbox();
do_case(c1_dead_pid) ->
    S = dead_srv(srv_c1),
    stop_call(gen_server, S, srv_c1, default);
do_case(c2_dead_pid_catch) ->
    S = dead_srv(srv_c2),
    log(["call catch gen_server:stop(srv_c2)"]),
    R = (catch gen_server:stop(S)),
    log(["result catch stop srv_c2 -> ", {t, R}]);
do_case(c3_dead_pid_elixir) ->
    S = dead_srv(srv_c3),
    stop_call('Elixir.GenServer', S, srv_c3, default);
do_case(d1_timeout_slow_terminate) ->
    S = srv(srv_d1, #{term => {sleep, 300}}),
    stop_call(gen_server, S, srv_d1, {normal, 100}),
    alive(S, srv_d1),
    wait_dead(S),
    mailbox();
do_case(d2_timeout_slow_terminate_elixir) ->
    S = srv(srv_d2, #{term => {sleep, 300}}),
    stop_call('Elixir.GenServer', S, srv_d2, {normal, 100}),
    alive(S, srv_d2),
    wait_dead(S),
    mailbox();
do_case(d3_timeout_busy_server) ->
    S = srv(srv_d3, #{}),
    log(["op cast srv_d3 busy 300ms"]),
    gen_server:cast(S, {busy, 300}),
    stop_call(gen_server, S, srv_d3, {normal, 100}),
    alive(S, srv_d3),
    wait_dead(S),
    mailbox();
do_case(e1_supervisor_stop) ->
    {ok, Sup} = supervisor:start_link(?MODULE, {sup, "sup_e1"}),
    unlink(Sup),
    name(Sup, "sup_e1", sup_exit),
    [{ok, _} = supervisor:start_child(Sup, worker_spec("sup_e1", C)) || C <- [a, b, c]],
    stop_call(gen_server, Sup, sup_e1, default),
    alive(Sup, sup_e1);
do_case(e2_supervisor_stop_boom_elixir) ->
    {ok, Sup} = supervisor:start_link(?MODULE, {sup, "sup_e2"}),
    unlink(Sup),
    name(Sup, "sup_e2", sup_exit),
    [{ok, _} = supervisor:start_child(Sup, worker_spec("sup_e2", C)) || C <- [a, b, c]],
    stop_call('Elixir.Supervisor', Sup, sup_e2, {boom, infinity}),
    alive(Sup, sup_e2);
do_case(e3_dynamic_supervisor_stop) ->
    {ok, Sup} = 'Elixir.DynamicSupervisor':start_link([{strategy, one_for_one}]),
    unlink(Sup),
    name(Sup, "dsup_e3", sup_exit),
    [{ok, _} = 'Elixir.DynamicSupervisor':start_child(Sup, worker_spec("dsup_e3", C))
     || C <- [a, b, c]],
    stop_call('Elixir.DynamicSupervisor', Sup, dsup_e3, default),
    alive(Sup, dsup_e3);
do_case(f1_terminate_crashes) ->
    S = srv(srv_f1, #{term => crash}),
    stop_call(gen_server, S, srv_f1, default),
    alive(S, srv_f1);
do_case(f2_terminate_exits_other) ->
    S = srv(srv_f2, #{term => {exit, other}}),
    stop_call(gen_server, S, srv_f2, {{shutdown, x}, infinity}),
    alive(S, srv_f2);
do_case(f3_terminate_crashes_elixir) ->
    S = srv(srv_f3, #{term => crash}),
    stop_call('Elixir.GenServer', S, srv_f3, default);
do_case(g1_unregistered_name) ->
    stop_call(gen_server, nosuch, nosuch, default);
do_case(g2_unregistered_name_elixir) ->
    stop_call('Elixir.GenServer', nosuch, nosuch, default);
do_case(g3_unregistered_name_node) ->
    stop_call(gen_server, {nosuch, node()}, '{nosuch,node()}', default);
do_case(g4_unregistered_global) ->
    stop_call(gen_server, {global, nosuch}, '{global,nosuch}', default);
do_case(g5_registered_name) ->
    S = srv(srv_g5, #{}),
    register(srv_g5, S),
    stop_call(gen_server, srv_g5, srv_g5, default),
    alive(S, srv_g5);
do_case(h1_stop_self) ->
    stop_call(gen_server, self(), caller, default);
do_case(i1_not_a_gen_process) ->
    P = spawn(fun() -> receive never -> ok end end),
    name(P, "plain_i1"),
    stop_call(gen_server, P, plain_i1, {normal, 100}),
    alive(P, plain_i1),
    exit(P, kill),
    wait_dead(P),
    mailbox().

%%---------------------------------------------------------------- helpers

stop_call(Api, Target, Label, How) ->
    {Args, RStr, TStr} =
        case How of
            default -> {[Target], "normal(default)", "infinity(default)"};
            {R, T} -> {[Target, R, T], fmt(R), fmt(T)}
        end,
    log(["call stop ", atom_to_list(Label), " reason=", RStr, " timeout=", TStr,
         " api=", atom_to_list(Api), ":stop/", integer_to_list(length(Args))]),
    Res = try apply(Api, stop, Args) of
              V -> V
          catch
              exit:E -> {exit, E};
              C:E -> {C, E}
          end,
    log(["result stop ", atom_to_list(Label), " -> ", {t, Res}]).

alive(P, Label) ->
    log(["alive ", atom_to_list(Label), " -> ", atom_to_list(is_process_alive(P))]).

mailbox() ->
    {messages, M} = process_info(self(), messages),
    log(["mailbox caller -> ", {t, M}]).

srv(Name, Opts) ->
    {ok, P} = gen_server:start(?MODULE, {srv, atom_to_list(Name), Opts}, []),
    P.

srv_link(Name, Opts) ->
    {ok, P} = gen_server:start_link(?MODULE, {srv, atom_to_list(Name), Opts}, []),
    P.

dead_srv(Name) ->
    S = srv(Name, #{}),
    log(["op kill ", atom_to_list(Name)]),
    exit(S, kill),
    wait_dead(S),
    S.

worker_spec(SupName, C) ->
    #{id => C, start => {?MODULE, start_worker, [{srv, SupName ++ "/" ++ atom_to_list(C),
                                                  #{trap => true}}]}}.

start_worker(Arg) -> gen_server:start_link(?MODULE, Arg, []).

wait_dead(Pid) ->
    Ref = erlang:monitor(process, Pid),
    receive {'DOWN', Ref, process, Pid, _} -> ok end.

%%---------------------------------------------------------------- callbacks

init({sup, _Name}) ->
    {ok, {#{strategy => one_for_one, intensity => 1, period => 5}, []}};
init({srv, Name, Opts}) ->
    process_flag(trap_exit, maps:get(trap, Opts, false)),
    name(self(), Name),
    log(["start ", Name]),
    put(name, Name),
    {ok, Opts}.

handle_call(_, _From, S) -> {reply, ok, S}.

handle_cast({busy, Ms}, S) ->
    timer:sleep(Ms),
    log(["busy_done ", get(name)]),
    {noreply, S}.

handle_info(_, S) -> {noreply, S}.

terminate(Reason, Opts) ->
    Name = get(name),
    log(["terminate ", Name, " reason=", {t, Reason}]),
    case maps:get(term, Opts, ok) of
        ok -> ok;
        {sleep, Ms} -> timer:sleep(Ms), log(["terminate_done ", Name]);
        crash -> error(crash_in_terminate);
        {exit, R} -> exit(R)
    end.

%%---------------------------------------------------------------- logger

log(#{msg := {report, #{label := {gen_server, terminate}} = Rep}}, _) ->
    tl_line(["report gen_server_terminate ", {bare, self()},
             " reason=", {t, maps:get(reason, Rep)}]);
log(#{msg := {report, #{label := {proc_lib, crash}, report := [Info | _]}}}, _) ->
    {Class, Reason, _St} = proplists:get_value(error_info, Info),
    tl_line(["report proc_lib_crash ", {bare, self()}, " class=", atom_to_list(Class),
             " reason=", {t, Reason}]);
log(#{msg := {report, #{label := {supervisor, Ctx}, report := Rep}}}, _) when Ctx =/= progress ->
    Off = proplists:get_value(offender, Rep),
    tl_line(["report ", {bare, self()}, " context=", atom_to_list(Ctx),
             " offender=", {bare, proplists:get_value(pid, Off)},
             " reason=", {t, proplists:get_value(reason, Rep)}]);
log(#{msg := {report, #{label := L}}}, _) ->
    tl_line(["report other label=", {t, L}]);
log(#{msg := {report, _}}, _) ->
    ok;
log(#{msg := {string, S}, level := Lvl}, _) ->
    tl_line(["log ", atom_to_list(Lvl), " ", io_lib:format("~ts", [S])]);
log(#{msg := {F, A}, level := Lvl}, _) when is_list(F) ->
    tl_line(["log ", atom_to_list(Lvl), " ", io_lib:format(F, A)]);
log(_, _) ->
    ok.

tl_line(L) -> _ = (catch tcall({line, L})), ok.

%%---------------------------------------------------------------- tracer

name(Pid, Name) -> name(Pid, Name, exit).
name(Pid, Name, Tag) -> ok = tcall({name, Pid, Name, Tag}).

log(Line) -> ok = tcall({line, Line}).

tcall(Req) ->
    Ref = erlang:monitor(process, ?T),
    ?T ! {tcall, self(), Ref, Req},
    receive
        {Ref, Reply} -> erlang:demonitor(Ref, [flush]), Reply;
        {'DOWN', Ref, _, _, R} -> exit({tracer_down, R})
    end.

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
    {ok, Names, Mons};
treq(forget, Names, Mons) ->
    %% end of a case: report nothing more about its processes
    [erlang:demonitor(M, [flush]) || M <- maps:keys(Mons)],
    {ok, Names, #{}}.

%% Deaths that already happened are written in the order their 'DOWN'
%% messages arrived at the tracer (= order of death on one node).
flush_dead(Names, Mons) ->
    Dead = maps:from_list([{MRef, P} || {MRef, P} <- maps:to_list(Mons),
                                        not is_process_alive(P)]),
    flush_dead(Names, Mons, Dead).

flush_dead(_Names, Mons, Dead) when map_size(Dead) =:= 0 ->
    Mons;
flush_dead(Names, Mons, Dead) ->
    receive
        {'DOWN', MRef, process, P, Reason} when is_map_key(MRef, Dead) ->
            {Path, Tag} = maps:get(P, Names),
            io:put_chars([atom_to_list(Tag), " ", Path, " reason=",
                          fmt(Reason, Names), $\n]),
            flush_dead(Names, maps:remove(MRef, Mons), maps:remove(MRef, Dead))
    end.

expand(L, Names) when is_list(L) -> [expand(X, Names) || X <- L];
expand({t, T}, Names) -> fmt(T, Names);
expand({bare, P}, Names) when is_pid(P) ->
    case maps:find(P, Names) of {ok, {Path, _}} -> Path; error -> "<pid>" end;
expand({bare, T}, Names) -> fmt(T, Names);
expand(X, _) -> X.

fmt(T) -> fmt(T, #{}).
fmt(P, Names) when is_pid(P) ->
    case maps:find(P, Names) of {ok, {Path, _}} -> ["<", Path, ">"]; error -> "<pid>" end;
fmt(R, _) when is_reference(R) -> "<ref>";
fmt(T, Names) when is_tuple(T) ->
    ["{", lists:join(",", [fmt(X, Names) || X <- tuple_to_list(T)]), "}"];
fmt([], _) -> "[]";
fmt(L, Names) when is_list(L) ->
    case is_stack(L) of
        true -> "<stack>";
        false -> ["[", lists:join(",", [fmt(X, Names) || X <- L]), "]"]
    end;
fmt(T, _) -> io_lib:format("~w", [T]).

is_stack(L) ->
    lists:all(fun({M, F, A, I}) when is_atom(M), is_atom(F), is_list(I),
                                     is_integer(A) orelse is_list(A) -> true;
                 (_) -> false
              end, L).
